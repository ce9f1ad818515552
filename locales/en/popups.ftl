# Popups: summary, body and action buttons (Rust: engine/wording.rs, notify/).
severity-alarm = Alarm
severity-warning = Warning
severity-info = Notice

# Saveris alarm_condition_type values we know; others are shown as received.
condition-upper-limit = Upper limit
condition-lower-limit = Lower limit
condition-upper-warning = Upper warning limit
condition-lower-warning = Lower warning limit

system-battery = battery nearly empty
system-power = external power lost
system-timeout = not reporting (connection timeout)
system-broken = sensor broken
system-calibration = calibration overdue

popup-since = since { $time }
popup-unknown-sensor = Unknown sensor
popup-rule-summary = { $severity }: { $name } { $value }
popup-rule-body = { $value }, { $limit } (rule “{ $rule }”)
popup-rule-novalue-summary = { $name }: { $limit }
popup-rule-novalue-body = No value received (rule “{ $rule }”)
popup-system-summary = { $name }: { $words }
popup-system-body = { $severity } system alarm: { $condition }
popup-summary = { $severity }: { $name }
popup-summary-condition = { $severity }: { $name } — { $condition }
popup-limit = limit
popup-condition-violated = alarm condition violated
popup-worse = { $name } got worse: now { $severity }
popup-worse-condition = { $name } — { $condition } got worse: now { $severity }
popup-step = { $severity } since { $time }
popup-was = was { $severity }
popup-site-time = { $time } site time ({ $zone })

group-alarms = { $count ->
    [one] { $count } alarm
   *[other] { $count } alarms
}
group-sensors = { $count ->
    [one] { $count } sensor
   *[other] { $count } sensors
}
group-summary = { $alarms } on { $sensors }
group-while-disconnected = { $alarms } on { $sensors } while disconnected
group-while-held = { $alarms } on { $sensors } while popups were held back
group-more = { $names } and { $count } more

keyring-summary = Alarms are not watched: the keyring cannot be read
keyring-not-watched = Not watched: { $feed }
keyring-more = … and { $count } more
silence-summary = { $feed }: not connected since { $time } — alarms may be missed
silence-now = Now: { $state }
silence-last = Last message at { $time }
unstable-summary = { $feed } keeps dropping the connection ({ $drops } times in { $mins } min) — alarms may be delayed
unstable-body = It reconnects each time, but alarms can arrive late while the link is unstable.

action-acknowledge = Acknowledge
action-open = Open
