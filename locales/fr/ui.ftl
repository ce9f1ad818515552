# The window (ui/src), loaded through Vite ?raw imports.

## App
app-page-settings = Paramètres
app-page-history = Historique
app-page-dashboard = Tableau de bord
app-pages = Pages
app-demo = Démo
app-tray-ok = Tout est calme
app-tray-alarm = Alarme
app-tray-problem = Problème de connexion
app-tray-paused = En pause
app-active = · { $count } active(s)
app-connection-lost = La connexion avec Alarm Tray a été perdue.
app-not-running = Alarm Tray ne fonctionne pas — aucune alarme n’est surveillée.
app-start = Le démarrer

## Paramètres
settings-sections = Sections des paramètres
settings-accounts = Comptes
settings-channels = Canaux et appareils
settings-rules = Règles
settings-general = Général
settings-escalation = Escalade
settings-team = Équipe

## Général
general-title = Général
general-version = Version
general-data-folder = Dossier des données
general-log-folder = Dossier des journaux
general-status = État
general-audit = Piste d’audit
general-audit-checking = vérification…
general-audit-intact = { $count ->
    [one] piste d’audit intacte ({ $count } enregistrement)
   *[other] piste d’audit intacte ({ $count } enregistrements)
}
general-audit-broken = piste d’audit NON intacte : { $problem }
general-audit-error = Piste d’audit : { $error }
general-fix-fields = Corrigez les champs signalés ci-dessus, puis enregistrez.
general-saved = Enregistré.
general-test-sent = Une notification de test a été envoyée. Si rien ne s’affiche, vérifiez les réglages de notification du système.
general-send-test = Envoyer une notification de test
general-pause = Suspendre les notifications
general-feeds = Connexions
general-no-feeds = Aucune connexion active. Ajoutez un compte pour en démarrer une.
general-notifications = Notifications
general-quiet-hours = Heures calmes
general-on = Activé
general-from = De
general-to = À
general-quiet-critical = Les alarmes critiques s’affichent quand même
general-group-window = Fenêtre de regroupement (s)
general-group-window-hint = Au-delà du maximum dans cette fenêtre, les alarmes sont regroupées en un résumé
general-group-max = Notifications maximum par fenêtre
general-feed-silence = Avertir si une connexion reste muette pendant (min)
general-sound-title = Son et répétition jusqu’à l’acquittement
general-sound-on = Jouer les sons d’alarme
general-critical-sound = Alarmes critiques : son
general-critical-repeat = Alarmes critiques : répéter toutes les (min)
general-critical-repeat-hint = Réapparaît avec son son jusqu’à acquittement ou disparition ; 0 = jamais
general-warning-sound = Avertissements : son
general-warning-repeat = Avertissements : répéter toutes les (min)
general-warning-repeat-hint = Les heures calmes retiennent les avertissements et leurs sons ; 0 = jamais
general-app = Application
general-autostart = Démarrer Alarm Tray à l’ouverture de session
general-retention = Conserver l’historique (jours)
general-ack-title = Acquittement et piste d’audit
general-display-name = Votre nom sur les acquittements
general-comment-required = Un commentaire est obligatoire pour acquitter une alarme critique
general-audit-retention = Conserver la piste d’audit (jours)
general-save = Enregistrer
general-language = Langue
general-language-auto = Comme le bureau
general-language-hint = S’applique immédiatement à cette fenêtre, au menu de la barre et aux nouvelles notifications
sound-alarm = Alarme (trois bips urgents)
sound-alert = Alerte (deux bips calmes)
sound-chime = Carillon
sound-none = Aucun (silencieux)

## Connexions
feed-idle = inactif
feed-connecting = connexion…
feed-live = connecté
feed-waiting = attente { $time } ({ $reason })
feed-login-failed = échec de connexion : { $message }
feed-stopped = arrêté : { $message }
feed-keyring = non surveillé, en attente du trousseau : { $message }
feed-through-team = surveillé par l’équipe ({ $pc })
feed-last-message = · dernier message { $ago }
feed-refused = { $message }. Désactivez puis réactivez le canal dans les paramètres du compte pour réessayer.
feed-last-error = Dernière erreur : { $error }
