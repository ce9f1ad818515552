// Feed status lines: the state in words and the last error, as the monitor reports them.
import type { FeedStatus } from "../types";
import { ago, parseTimestamp } from "../lib/format";
import { tid } from "../lib/testid";
import { format, useT, type T } from "../i18n";

const english: T = (id, args) => format("en", id, args);

export function describeFeed(f: FeedStatus, t: T = english): string {
  switch (f.state) {
    case "idle":
      return t("feed-idle");
    case "connecting":
      return t("feed-connecting");
    case "live":
      return t("feed-live");
    case "waiting": {
      const time = f.secs >= 120 ? `${Math.ceil(f.secs / 60)} min` : `${f.secs} s`;
      return t("feed-waiting", { time, reason: f.reason });
    }
    case "login_failed":
      return t("feed-login-failed", { message: f.message });
    case "stopped":
      return t("feed-stopped", { message: f.message });
    case "waiting_for_keyring":
      return t("feed-keyring", { message: f.message });
    case "through_team":
      return t("feed-through-team", { pc: f.pc });
  }
}

function stateClass(f: FeedStatus): string {
  if (f.state === "live") return "good";
  if (f.state === "idle" || f.state === "connecting" || f.state === "through_team") return "neutral";
  return "bad";
}

/** Feeds whose id belongs to `accountId` (`saveris:<id>`, `element:<id>:<sub>`). */
export function feedsOf(feeds: FeedStatus[] | undefined, accountId: string): FeedStatus[] {
  return (feeds ?? []).filter((f) => {
    const parts = f.feed.split(":");
    return parts[1] === accountId;
  });
}

export function FeedLine({ f }: { f: FeedStatus }) {
  const last = parseTimestamp(f.last_message_at);
  const safe = tid(f.feed);
  const t = useT();
  return (
    <li class="feed" data-testid={`feed-${safe}`} data-feed={f.feed} data-state={f.state}>
      <span class={`dot ${stateClass(f)}`} aria-hidden="true" />
      <span class="feed-label">{f.label}</span>
      <span class={`feed-state ${stateClass(f)}`} data-testid={`feed-state-${safe}`}>
        {describeFeed(f, t)}
      </span>
      {last !== null && <span class="muted"> {t("feed-last-message", { ago: ago(last) })}</span>}
      {(f.refused ?? []).map((r) => (
        <div
          class="feed-error"
          data-testid={`feed-refused-${safe}-${tid(r.channel)}`}
          key={r.channel}
        >
          {t("feed-refused", { message: r.message })}
        </div>
      ))}
      {f.names && (
        <div class="muted small" data-testid={`feed-names-${safe}`}>
          {f.names}
        </div>
      )}
      {f.last_error && (
        <div class="feed-error" data-testid={`feed-error-${safe}`}>
          {t("feed-last-error", { error: f.last_error })}
        </div>
      )}
    </li>
  );
}

export function FeedList({ feeds, empty }: { feeds: FeedStatus[]; empty?: string }) {
  if (feeds.length === 0) return empty ? <p class="muted">{empty}</p> : null;
  return (
    <ul class="feeds" data-testid="feed-list">
      {feeds.map((f) => (
        <FeedLine key={f.feed} f={f} />
      ))}
    </ul>
  );
}
