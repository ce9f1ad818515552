# The window (ui/src), loaded through Vite ?raw imports.

## App (header, tabs, banners)
app-page-settings = Settings
app-page-history = History
app-page-dashboard = Dashboard
app-pages = Pages
app-demo = Demo
app-tray-ok = All quiet
app-tray-alarm = Alarm
app-tray-problem = Feed problem
app-tray-paused = Paused
app-active = · { $count } active
app-connection-lost = The connection to Alarm Tray was lost.
app-not-running = Alarm Tray is not running — no alarms are being watched.
app-start = Start it

## Settings page
settings-sections = Settings sections
settings-accounts = Accounts
settings-channels = Channels & devices
settings-rules = Rules
settings-general = General
settings-escalation = Escalation
settings-team = Team

## General
general-title = General
general-version = Version
general-data-folder = Data folder
general-log-folder = Log folder
general-status = Status
general-audit = Audit trail
general-audit-checking = checking…
general-audit-intact = { $count ->
    [one] audit trail intact ({ $count } record)
   *[other] audit trail intact ({ $count } records)
}
general-audit-broken = audit trail NOT intact: { $problem }
general-audit-error = Audit trail: { $error }
general-fix-fields = Fix the fields marked above, then save.
general-saved = Saved.
general-test-sent = A test notification was sent. If no popup appeared, check the system's notification settings.
general-send-test = Send test notification
general-pause = Pause notifications
general-feeds = Feeds
general-no-feeds = No feed is running. Add an account to start one.
general-notifications = Notifications
general-quiet-hours = Quiet hours
general-on = On
general-from = From
general-to = To
general-quiet-critical = Critical alarms still pop up
general-group-window = Grouping window (s)
general-group-window-hint = More alarms than the maximum in this window become one summary
general-group-max = Maximum popups per window
general-feed-silence = Warn when a feed is silent for (min)
general-sound-title = Sound and repeat until acknowledged
general-sound-on = Play alarm sounds
general-critical-sound = Critical alarms: sound
general-critical-repeat = Critical alarms: repeat every (min)
general-critical-repeat-hint = Pops again with its sound until acknowledged or cleared; 0 = never
general-warning-sound = Warnings: sound
general-warning-repeat = Warnings: repeat every (min)
general-warning-repeat-hint = Quiet hours hold warnings and their sounds; 0 = never
general-app = App
general-autostart = Start Alarm Tray when I log in
general-retention = Keep history (days)
general-ack-title = Acknowledging and audit trail
general-display-name = Your name on acknowledgements
general-comment-required = A comment is required to acknowledge critical alarms
general-audit-retention = Keep the audit trail (days)
general-save = Save
general-language = Language
general-language-auto = Same as the desktop
general-language-hint = Applies at once to this window, the tray menu and new popups
sound-alarm = Alarm (three urgent beeps)
sound-alert = Alert (two calm beeps)
sound-chime = Chime
sound-none = None (silent)

## Feed status lines (settings/feeds.tsx)
feed-idle = idle
feed-connecting = connecting…
feed-live = live
feed-waiting = waiting { $time } ({ $reason })
feed-login-failed = login failed: { $message }
feed-stopped = stopped: { $message }
feed-keyring = not watched, waiting for the keyring: { $message }
feed-through-team = watching through the team ({ $pc })
feed-last-message = · last message { $ago }
feed-refused = { $message }. Turn the channel off and on in the account's settings to try it again.
feed-last-error = Last error: { $error }
