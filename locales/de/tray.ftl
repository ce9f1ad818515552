tray-starting = wird gestartet
tray-tooltip-starting = Alarm Tray: wird gestartet
tray-open = Alarm Tray öffnen
tray-history = Alarmverlauf
tray-pause = Benachrichtigungen pausieren
tray-resume = Benachrichtigungen fortsetzen
tray-quit = Beenden
tray-active = { $count ->
    [0] keine aktiven Alarme
    [one] { $count } aktiver Alarm
   *[other] { $count } aktive Alarme
}
tray-feed = { $kind } { $state }
tray-login-failed = Anmeldung fehlgeschlagen
tray-stopped = angehalten
tray-keyring = nicht überwacht (Schlüsselbund gesperrt oder fehlt)
tray-reconnecting = verbindet neu
tray-through-team = überwacht über das Team
tray-connecting = verbindet
tray-live = verbunden
tray-idle = inaktiv
tray-unstable = Verbindung instabil
tray-popups-failing = Meldungen schlagen fehl
tray-history-failing = Verlauf kann nicht geschrieben werden
tray-paused = Meldungen pausiert

status-acknowledged = { $count } quittiert
status-snoozed = { $count ->
    [one] { $count } Fühler stummgeschaltet
   *[other] { $count } Fühler stummgeschaltet
}
status-feed = { $feed }: { $state }
status-unstable = verliert ständig die Verbindung
status-history-failing = Verlauf kann nicht geschrieben werden
status-popups-failing = Meldungen schlagen fehl: werden aufbewahrt, bis der Benachrichtigungsdienst wieder da ist
status-audit-failing = Audit-Trail kann nicht geschrieben werden
status-webhook-failing = Webhook { $name } schlägt fehl
status-paused = Meldungen pausiert
team-pcs-watching = { $count ->
    [one] { $count } PC überwacht
   *[other] { $count } PCs überwachen
}
team-sole-holder = nur dieser PC empfängt { $feed }
status-quiet = Ruhezeit
