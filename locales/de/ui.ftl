# The window (ui/src), loaded through Vite ?raw imports.

## App
app-page-settings = Einstellungen
app-page-history = Verlauf
app-page-dashboard = Übersicht
app-pages = Seiten
app-demo = Demo
app-tray-ok = Alles ruhig
app-tray-alarm = Alarm
app-tray-problem = Verbindungsproblem
app-tray-paused = Pausiert
app-active = · { $count } aktiv
app-connection-lost = Die Verbindung zu Alarm Tray ist abgebrochen.
app-not-running = Alarm Tray läuft nicht — es werden keine Alarme überwacht.
app-start = Jetzt starten

## Einstellungen
settings-sections = Bereiche der Einstellungen
settings-accounts = Konten
settings-channels = Kanäle & Geräte
settings-rules = Regeln
settings-general = Allgemein
settings-escalation = Eskalation
settings-team = Team

## Allgemein
general-title = Allgemein
general-version = Version
general-data-folder = Datenordner
general-log-folder = Protokollordner
general-status = Status
general-audit = Audit-Trail
general-audit-checking = wird geprüft…
general-audit-intact = { $count ->
    [one] Audit-Trail unversehrt ({ $count } Eintrag)
   *[other] Audit-Trail unversehrt ({ $count } Einträge)
}
general-audit-broken = Audit-Trail NICHT unversehrt: { $problem }
general-audit-error = Audit-Trail: { $error }
general-fix-fields = Bitte die markierten Felder korrigieren und dann speichern.
general-saved = Gespeichert.
general-test-sent = Eine Testmeldung wurde gesendet. Falls keine erschienen ist, die Benachrichtigungseinstellungen des Systems prüfen.
general-send-test = Testmeldung senden
general-pause = Benachrichtigungen pausieren
general-feeds = Verbindungen
general-no-feeds = Keine Verbindung aktiv. Ein Konto hinzufügen, um eine zu starten.
general-notifications = Benachrichtigungen
general-quiet-hours = Ruhezeiten
general-on = Ein
general-from = Von
general-to = Bis
general-quiet-critical = Kritische Alarme trotzdem anzeigen
general-group-window = Zeitfenster für Gruppierung (s)
general-group-window-hint = Mehr Alarme als das Maximum in diesem Zeitfenster werden zu einer Sammelmeldung
general-group-max = Höchstzahl Meldungen pro Zeitfenster
general-feed-silence = Warnen, wenn eine Verbindung still ist seit (min)
general-sound-title = Ton und Wiederholung bis zur Quittierung
general-sound-on = Alarmtöne abspielen
general-critical-sound = Kritische Alarme: Ton
general-critical-repeat = Kritische Alarme: wiederholen alle (min)
general-critical-repeat-hint = Erscheint mit Ton erneut, bis quittiert oder behoben; 0 = nie
general-warning-sound = Warnungen: Ton
general-warning-repeat = Warnungen: wiederholen alle (min)
general-warning-repeat-hint = Ruhezeiten halten Warnungen und ihre Töne zurück; 0 = nie
general-app = Programm
general-autostart = Alarm Tray bei der Anmeldung starten
general-retention = Verlauf aufbewahren (Tage)
general-ack-title = Quittierung und Audit-Trail
general-display-name = Ihr Name bei Quittierungen
general-comment-required = Für die Quittierung kritischer Alarme ist ein Kommentar nötig
general-audit-retention = Audit-Trail aufbewahren (Tage)
general-save = Speichern
general-language = Sprache
general-language-auto = Wie der Desktop
general-language-hint = Gilt sofort für dieses Fenster, das Tray-Menü und neue Meldungen
sound-alarm = Alarm (drei dringende Pieptöne)
sound-alert = Hinweis (zwei ruhige Pieptöne)
sound-chime = Gong
sound-none = Kein Ton (lautlos)

## Verbindungen
feed-idle = inaktiv
feed-connecting = verbindet…
feed-live = verbunden
feed-waiting = wartet { $time } ({ $reason })
feed-login-failed = Anmeldung fehlgeschlagen: { $message }
feed-stopped = angehalten: { $message }
feed-keyring = nicht überwacht, wartet auf den Schlüsselbund: { $message }
feed-through-team = überwacht über das Team ({ $pc })
feed-last-message = · letzte Nachricht { $ago }
feed-refused = { $message }. Den Kanal in den Kontoeinstellungen aus- und wieder einschalten, um es erneut zu versuchen.
feed-last-error = Letzter Fehler: { $error }
