# Notifications : titre, texte et boutons.
severity-alarm = Alarme
severity-warning = Avertissement
severity-info = Information

condition-upper-limit = Limite supérieure
condition-lower-limit = Limite inférieure
condition-upper-warning = Limite d’avertissement supérieure
condition-lower-warning = Limite d’avertissement inférieure

system-battery = pile presque vide
system-power = alimentation externe coupée
system-timeout = ne transmet plus (délai de connexion dépassé)
system-broken = sonde défectueuse
system-calibration = étalonnage en retard

popup-since = depuis { $time }
popup-unknown-sensor = Sonde inconnue
popup-rule-summary = { $severity } : { $name } { $value }
popup-rule-body = { $value }, { $limit } (règle « { $rule } »)
popup-rule-novalue-summary = { $name } : { $limit }
popup-rule-novalue-body = Aucune valeur reçue (règle « { $rule } »)
popup-system-summary = { $name } : { $words }
popup-system-body = Alarme système ({ $severity }) : { $condition }
popup-summary = { $severity } : { $name }
popup-summary-condition = { $severity } : { $name } — { $condition }
popup-limit = limite
popup-condition-violated = condition d’alarme non respectée
popup-worse = { $name } s’est aggravé : maintenant { $severity }
popup-worse-condition = { $name } — { $condition } s’est aggravé : maintenant { $severity }
popup-step = { $severity } depuis { $time }
popup-was = auparavant { $severity }
popup-site-time = { $time } heure du site ({ $zone })

group-alarms = { $count ->
    [one] { $count } alarme
   *[other] { $count } alarmes
}
group-sensors = { $count ->
    [one] { $count } sonde
   *[other] { $count } sondes
}
group-summary = { $alarms } sur { $sensors }
group-while-disconnected = { $alarms } sur { $sensors } pendant la déconnexion
group-while-held = { $alarms } sur { $sensors } pendant que les notifications étaient retenues
group-more = { $names } et { $count } de plus

keyring-summary = Les alarmes ne sont pas surveillées : le trousseau de clés est illisible
keyring-not-watched = Non surveillé : { $feed }
keyring-more = … et { $count } de plus
silence-summary = { $feed } : non connecté depuis { $time } — des alarmes peuvent être manquées
silence-now = Maintenant : { $state }
silence-last = Dernier message à { $time }
unstable-summary = { $feed } perd sans cesse la connexion ({ $drops } fois en { $mins } min) — des alarmes peuvent arriver en retard
unstable-body = La connexion se rétablit à chaque fois, mais les alarmes peuvent arriver en retard tant que la liaison est instable.

action-acknowledge = Acquitter
action-open = Ouvrir
