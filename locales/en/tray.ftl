# Tray menu, tooltip and status line (Rust: gui/tray.rs).
tray-starting = starting
tray-tooltip-starting = Alarm Tray: starting
tray-open = Open Alarm Tray
tray-history = Alarm history
tray-pause = Pause notifications
tray-resume = Resume notifications
tray-quit = Quit
tray-active = { $count ->
    [0] no active alarms
    [one] { $count } active alarm
   *[other] { $count } active alarms
}
tray-feed = { $kind } { $state }
tray-login-failed = login failed
tray-stopped = stopped
tray-keyring = not watched (keyring locked or missing)
tray-reconnecting = reconnecting
tray-through-team = watching through the team
tray-connecting = connecting
tray-live = live
tray-idle = idle
tray-unstable = connection unstable
tray-popups-failing = popups failing
tray-history-failing = history cannot be written
tray-paused = popups paused

# The engine's status summary (tooltip, window header title, General → Status).
status-acknowledged = { $count } acknowledged
status-snoozed = { $count ->
    [one] { $count } sensor snoozed
   *[other] { $count } sensors snoozed
}
status-feed = { $feed }: { $state }
status-unstable = keeps dropping the connection
status-history-failing = history cannot be written
status-popups-failing = popups failing: kept until the notification service is back
status-audit-failing = audit trail cannot be written
status-webhook-failing = webhook { $name } failing
status-paused = popups paused
team-pcs-watching = { $count ->
    [one] { $count } PC watching
   *[other] { $count } PCs watching
}
team-sole-holder = only this PC receives { $feed }
status-quiet = quiet hours
