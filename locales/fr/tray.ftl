tray-starting = démarrage
tray-tooltip-starting = Alarm Tray : démarrage
tray-open = Ouvrir Alarm Tray
tray-history = Historique des alarmes
tray-pause = Suspendre les notifications
tray-resume = Reprendre les notifications
tray-quit = Quitter
tray-active = { $count ->
    [0] aucune alarme active
    [one] { $count } alarme active
   *[other] { $count } alarmes actives
}
tray-feed = { $kind } { $state }
tray-login-failed = échec de connexion
tray-stopped = arrêté
tray-keyring = non surveillé (trousseau verrouillé ou absent)
tray-reconnecting = reconnexion
tray-through-team = surveillé par l’équipe
tray-connecting = connexion
tray-live = connecté
tray-idle = inactif
tray-unstable = connexion instable
tray-popups-failing = échec des notifications
tray-history-failing = l’historique ne peut pas être écrit
tray-paused = notifications suspendues

status-acknowledged = { $count } acquittée(s)
status-snoozed = { $count ->
    [one] { $count } sonde en sourdine
   *[other] { $count } sondes en sourdine
}
status-feed = { $feed } : { $state }
status-unstable = perd sans cesse la connexion
status-history-failing = l’historique ne peut pas être écrit
status-popups-failing = échec des notifications : conservées jusqu’au retour du service de notification
status-audit-failing = la piste d’audit ne peut pas être écrite
status-webhook-failing = webhook { $name } en échec
status-paused = notifications suspendues
team-pcs-watching = { $count ->
    [one] { $count } poste surveille
   *[other] { $count } postes surveillent
}
team-sole-holder = seul ce poste reçoit { $feed }
status-quiet = heures calmes
