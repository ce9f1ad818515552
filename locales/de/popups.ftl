# Meldungen: Titel, Text und Schaltflächen.
severity-alarm = Alarm
severity-warning = Warnung
severity-info = Hinweis

condition-upper-limit = Oberer Grenzwert
condition-lower-limit = Unterer Grenzwert
condition-upper-warning = Oberer Warngrenzwert
condition-lower-warning = Unterer Warngrenzwert

system-battery = Batterie fast leer
system-power = externe Stromversorgung ausgefallen
system-timeout = meldet sich nicht (Verbindungs-Timeout)
system-broken = Fühler defekt
system-calibration = Kalibrierung überfällig

popup-since = seit { $time }
popup-unknown-sensor = Unbekannter Fühler
popup-rule-summary = { $severity }: { $name } { $value }
popup-rule-body = { $value }, { $limit } (Regel „{ $rule }“)
popup-rule-novalue-summary = { $name }: { $limit }
popup-rule-novalue-body = Kein Messwert empfangen (Regel „{ $rule }“)
popup-system-summary = { $name }: { $words }
popup-system-body = Systemalarm ({ $severity }): { $condition }
popup-summary = { $severity }: { $name }
popup-summary-condition = { $severity }: { $name } — { $condition }
popup-limit = Grenzwert
popup-condition-violated = Alarmbedingung verletzt
popup-worse = { $name } hat sich verschlechtert: jetzt { $severity }
popup-worse-condition = { $name } — { $condition } hat sich verschlechtert: jetzt { $severity }
popup-step = { $severity } seit { $time }
popup-was = vorher { $severity }
popup-site-time = { $time } Ortszeit am Standort ({ $zone })

group-alarms = { $count ->
    [one] { $count } Alarm
   *[other] { $count } Alarme
}
group-sensors = { $count ->
    [one] { $count } Fühler
   *[other] { $count } Fühlern
}
group-summary = { $alarms } an { $sensors }
group-while-disconnected = { $alarms } an { $sensors } während der Verbindungsunterbrechung
group-while-held = { $alarms } an { $sensors }, während Meldungen zurückgehalten wurden
group-more = { $names } und { $count } weitere

keyring-summary = Alarme werden nicht überwacht: der Schlüsselbund kann nicht gelesen werden
keyring-not-watched = Nicht überwacht: { $feed }
keyring-more = … und { $count } weitere
silence-summary = { $feed }: seit { $time } nicht verbunden — Alarme können verloren gehen
silence-now = Jetzt: { $state }
silence-last = Letzte Nachricht um { $time }
unstable-summary = { $feed } verliert ständig die Verbindung ({ $drops }-mal in { $mins } min) — Alarme können verspätet ankommen
unstable-body = Die Verbindung wird jedes Mal neu aufgebaut, aber solange sie instabil ist, können Alarme verspätet ankommen.

action-acknowledge = Quittieren
action-open = Öffnen
