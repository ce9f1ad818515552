// Channels & devices: what each account subscribes to, the sensors seen so far, and how
// every feed is doing.
import { useEffect, useState } from "preact/hooks";
import { api, errorText, loadError, updateSettings } from "../api";
import { useApp } from "../context";
import { newId } from "../lib/ids";
import { tid } from "../lib/testid";
import type { Channels as ChannelFlags, ElementAccount, ElementScope, ElementSubscription, LatestValue, NamedItem, Settings } from "../types";
import { Button, Check, Choice, Field, Message, Select } from "../widgets";
import { elementLabel, saverisLabel } from "./Accounts";
import { FeedLine, FeedList, feedsOf } from "./feeds";

const CHANNELS: { key: keyof ChannelFlags; label: string }[] = [
  { key: "alarms", label: "Alarms" },
  { key: "measurements", label: "Measurements" },
  { key: "measurements_v2", label: "Measurements v2" },
];

export function ChannelsSection({ settings, reload }: { settings: Settings; reload: () => void }) {
  const { status } = useApp();
  const [error, setError] = useState<string | null>(null);

  const toggleChannel = async (account: string, key: keyof ChannelFlags, on: boolean) => {
    setError(null);
    try {
      await updateSettings((s) => {
        const a = s.saveris.find((x) => x.id === account);
        if (a) a.channels[key] = on;
      });
      reload();
    } catch (e) {
      setError(errorText(e));
      reload();
    }
  };

  return (
    <section aria-labelledby="channels-h">
      <h2 id="channels-h">Channels &amp; devices</h2>
      <Message text={error} testid="channels-error" />
      {settings.saveris.length === 0 && settings.element.length === 0 && (
        <p class="muted">Add an account under “Accounts” first.</p>
      )}
      {settings.saveris.map((a) => {
        // Channels Saveris refused for this user (licence or permission missing): the feed
        // left them out; turning the channel off and on restarts the feed, which clears this.
        const refused = feedsOf(status?.feeds, a.id).flatMap((f) => f.refused ?? []);
        return (
        <div class="card" key={a.id} data-testid={`channels-saveris-${tid(a.id)}`} data-account-id={a.id}>
          <h3>{saverisLabel(a)}</h3>
          <fieldset class="inline">
            <legend>Channels</legend>
            {CHANNELS.map((c) => {
              const r = refused.find((x) => x.channel === c.key.replace("_", "-"));
              return (
                <span key={c.key}>
                  <Check
                    label={c.label}
                    checked={a.channels[c.key]}
                    testid={`channel-${tid(a.id)}-${c.key}`}
                    onChange={(v) => toggleChannel(a.id, c.key, v)}
                  />
                  {r && (
                    <span class="feed-error" data-testid={`channel-refused-${tid(a.id)}-${c.key}`} title={r.message}>
                      {" "}⚠ {r.message}
                    </span>
                  )}
                </span>
              );
            })}
          </fieldset>
          <FeedList feeds={feedsOf(status?.feeds, a.id)} empty="No status yet." />
        </div>
        );
      })}
      {settings.element.map((a) => (
        <ElementSubscriptions key={a.id} account={a} reload={reload} />
      ))}
      <Sensors settings={settings} reload={reload} />
    </section>
  );
}

function scopeLabel(s: ElementScope): string {
  return s.type === "mandate" ? "whole mandate" : `${s.type} ${s.id}`;
}

function ElementSubscriptions({ account, reload }: { account: ElementAccount; reload: () => void }) {
  const { status } = useApp();
  const [editing, setEditing] = useState<{ sub: ElementSubscription; isNew: boolean } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const aid = tid(account.id);
  const feeds = feedsOf(status?.feeds, account.id);

  const remove = async (id: string) => {
    setError(null);
    try {
      await updateSettings((s) => {
        const a = s.element.find((x) => x.id === account.id);
        if (a) a.subscriptions = a.subscriptions.filter((x) => x.id !== id);
      });
      reload();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <div class="card" data-testid={`channels-element-${aid}`} data-account-id={account.id}>
      <h3>{elementLabel(account)}</h3>
      <Message text={error} testid={`subs-error-${aid}`} />
      {account.subscriptions.length === 0 ? (
        <p class="muted">No subscription yet.</p>
      ) : (
        <ul class="subs">
          {account.subscriptions.map((s) => (
            <li key={s.id} data-testid={`sub-${tid(s.id)}`}>
              <span>
                {s.kind} of {scopeLabel(s.scope)}
                {s.preload.length > 0 && <span class="muted"> · preload {s.preload.join(", ")}</span>}
                {!s.enabled && <span class="badge">disabled</span>}
              </span>
              <span class="spacer" />
              <Button testid={`sub-edit-${tid(s.id)}`} onClick={() => setEditing({ sub: structuredClone(s), isNew: false })}>
                Edit
              </Button>
              <Button testid={`sub-remove-${tid(s.id)}`} kind="danger" onClick={() => remove(s.id)}>
                Remove
              </Button>
              {feeds
                .filter((f) => f.feed === `element:${account.id}:${s.id}`)
                .map((f) => (
                  <ul class="feeds feed-inline" key={f.feed}>
                    <FeedLine f={f} />
                  </ul>
                ))}
            </li>
          ))}
        </ul>
      )}
      {editing ? (
        <SubscriptionEditor
          account={account}
          initial={editing.sub}
          onDone={() => {
            setEditing(null);
            reload();
          }}
          onCancel={() => setEditing(null)}
        />
      ) : (
        <Button
          testid={`sub-add-${aid}`}
          kind="primary"
          onClick={() =>
            setEditing({
              sub: { id: newId("sub"), enabled: true, scope: { type: "device", id: "" }, kind: "readings", preload: ["device"], catch_up_hours: 0 },
              isNew: true,
            })
          }
        >
          Add subscription
        </Button>
      )}
      {/* Feeds of this account that belong to no listed subscription (e.g. just removed). */}
      <FeedList feeds={feeds.filter((f) => !account.subscriptions.some((s) => f.feed === `element:${account.id}:${s.id}`))} />
    </div>
  );
}

/** The preloads the vendor lists per socket kind (a packet socket has no `packet`). */
export function preloadsFor(kind: string): string[] {
  const device = ["device", "device.fields", "device.interfaces"];
  return kind === "packets" ? device : [...device, "packet", "packet.interface"];
}

function SubscriptionEditor(p: { account: ElementAccount; initial: ElementSubscription; onDone: () => void; onCancel: () => void }) {
  const [sub, setSub] = useState<ElementSubscription>(p.initial);
  const [catchUp, setCatchUp] = useState(String(p.initial.catch_up_hours));
  const [devices, setDevices] = useState<NamedItem[] | null>(null);
  const [tags, setTags] = useState<NamedItem[] | null>(null);
  const [tagFilter, setTagFilter] = useState("");
  const [discoverError, setDiscoverError] = useState<string | null>(null);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [saveError, setSaveError] = useState<string | null>(null);
  const scope = sub.scope;
  const scopeId = scope.type === "mandate" ? "" : scope.id;

  const discover = async () => {
    setDiscoverError(null);
    try {
      const [d, t] = await Promise.all([
        api.discover(p.account.id, { what: "devices" }),
        api.discover(p.account.id, { what: "tags" }),
      ]);
      setDevices(d);
      setTags(t);
    } catch (e) {
      setDiscoverError(errorText(e));
    }
  };
  useEffect(() => {
    discover();
  }, [p.account.id]);

  const filterByTag = async (tag: string) => {
    setTagFilter(tag);
    setDiscoverError(null);
    try {
      setDevices(await api.discover(p.account.id, tag ? { what: "tag_devices", id: tag } : { what: "devices" }));
    } catch (e) {
      setDiscoverError(errorText(e));
    }
  };

  const setScope = (type: ElementScope["type"], id = "") =>
    setSub({ ...sub, scope: type === "mandate" ? { type } : { type, id } });

  const picker = (items: NamedItem[] | null, kind: "device" | "tag") => {
    const label = kind === "device" ? "Device" : "Tag";
    if (!items)
      return <Field label={`${label} id`} value={scopeId} onInput={(v) => setScope(kind, v)} testid={`sub-${kind}`} error={errors.scope} />;
    const opts = items.map((i) => ({ value: i.id, label: i.name && i.name !== i.id ? `${i.name} (${i.id})` : i.id }));
    if (scopeId && !items.some((i) => i.id === scopeId)) opts.unshift({ value: scopeId, label: `${scopeId} (not listed)` });
    opts.unshift({ value: "", label: `— choose a ${kind} —` });
    return <Select label={label} value={scopeId} options={opts} onChange={(v) => setScope(kind, v)} testid={`sub-${kind}`} error={errors.scope} />;
  };

  const save = async () => {
    setSaveError(null);
    const e: Record<string, string> = {};
    if (scope.type !== "mandate" && scope.id.trim() === "")
      e.scope = scope.type === "stream" ? "Enter the stream id." : `Choose a ${scope.type}.`;
    const h = Number(catchUp.trim());
    if (catchUp.trim() === "" || !Number.isInteger(h) || h < 0 || h > 24 * 30) e.catchUp = "Enter whole hours from 0 to 720.";
    setErrors(e);
    if (Object.keys(e).length) return;
    const next: ElementSubscription = {
      ...sub,
      scope: scope.type === "mandate" ? scope : { ...scope, id: scope.id.trim() },
      catch_up_hours: h,
    };
    try {
      await updateSettings((s) => {
        const a = s.element.find((x) => x.id === p.account.id);
        if (!a) throw new Error("This account was removed meanwhile.");
        const i = a.subscriptions.findIndex((x) => x.id === next.id);
        if (i >= 0) a.subscriptions[i] = next;
        else a.subscriptions.push(next);
      });
      p.onDone();
    } catch (err) {
      setSaveError(errorText(err));
    }
  };

  return (
    <div class="subeditor" data-testid="sub-editor">
      <div class="row">
        <Select
          label="Subscribe to"
          value={scope.type}
          testid="sub-scope"
          options={[
            { value: "device", label: "A device" },
            { value: "tag", label: "All devices of a tag" },
            { value: "stream", label: "A stream" },
            { value: "mandate", label: "The whole mandate" },
          ]}
          onChange={(v) => setScope(v as ElementScope["type"])}
        />
        <Choice
          legend="What"
          value={sub.kind}
          testid="sub-kind"
          options={[
            { value: "readings", label: "Readings" },
            { value: "packets", label: "Packets" },
          ]}
          onChange={(v) => {
            const kind = v as ElementSubscription["kind"];
            // A preload the new kind of socket does not allow would be refused (HTTP 4xx).
            setSub({ ...sub, kind, preload: sub.preload.filter((pl) => preloadsFor(kind).includes(pl)) });
          }}
        />
      </div>
      <div class="row">
        {scope.type === "device" && tags && tags.length > 0 && (
          <Select
            label="Narrow devices by tag"
            value={tagFilter}
            testid="sub-tag-filter"
            options={[{ value: "", label: "All devices" }, ...tags.map((t) => ({ value: t.id, label: t.name || t.id }))]}
            onChange={filterByTag}
          />
        )}
        {scope.type === "device" && picker(devices, "device")}
        {scope.type === "tag" && picker(tags, "tag")}
        {scope.type === "stream" && (
          <Field label="Stream id" value={scopeId} onInput={(v) => setScope("stream", v)} testid="sub-stream" error={errors.scope} />
        )}
        {(scope.type === "device" || scope.type === "tag") && (
          <Button testid="sub-discover" onClick={discover}>
            Reload list
          </Button>
        )}
      </div>
      {discoverError && <Message text={`Could not list devices and tags: ${discoverError}`} testid="sub-discover-error" />}
      <fieldset class="inline">
        <legend>Preload</legend>
        {preloadsFor(sub.kind).map((pl) => (
          <Check
            key={pl}
            label={pl}
            checked={sub.preload.includes(pl)}
            testid={`sub-preload-${pl.replace(".", "-")}`}
            onChange={(on) => setSub({ ...sub, preload: on ? [...sub.preload, pl] : sub.preload.filter((x) => x !== pl) })}
          />
        ))}
      </fieldset>
      <div class="row">
        <Field label="Catch up on first start (hours)" value={catchUp} onInput={setCatchUp} testid="sub-catch-up" inputMode="numeric" error={errors.catchUp} />
        <Check label="Enabled" checked={sub.enabled} onChange={(v) => setSub({ ...sub, enabled: v })} testid="sub-enabled" />
      </div>
      <div class="actions">
        <span class="spacer" />
        <Button testid="sub-cancel" onClick={p.onCancel}>
          Cancel
        </Button>
        <Button testid="sub-save" kind="primary" onClick={save}>
          Save subscription
        </Button>
      </div>
      <Message text={saveError} testid="sub-save-error" />
    </div>
  );
}

interface SensorRow {
  sensor: string;
  serial: string;
  quantity: string;
  source: string;
}

function Sensors({ settings, reload }: { settings: Settings; reload: () => void }) {
  const { historyTick } = useApp();
  const [latest, setLatest] = useState<LatestValue[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api
      .latestValues()
      .then(setLatest)
      .catch((e) => setError(loadError(e)));
  }, [historyTick]);

  const rows: SensorRow[] = (latest ?? []).map((l) => ({
    sensor: l.sensor,
    serial: l.name ?? "",
    quantity: l.quantity ?? "",
    source: l.source,
  }));
  for (const id of Object.keys(settings.sensors)) {
    if (!rows.some((r) => r.sensor === id)) rows.push({ sensor: id, serial: "", quantity: "", source: "" });
  }
  rows.sort((a, b) => a.sensor.localeCompare(b.sensor));

  return (
    <div class="card">
      <h3>Sensors seen so far</h3>
      <Message text={error} testid="sensors-error" />
      {latest !== null && rows.length === 0 && <p class="muted">No sensor has reported yet.</p>}
      {rows.length > 0 && (
        <table class="table sensors" data-testid="sensors-table">
          <thead>
            <tr>
              <th scope="col">Sensor</th>
              <th scope="col">Quantity</th>
              <th scope="col">Display name</th>
              <th scope="col">Notify</th>
              <th scope="col">
                <span class="sr-only">Save</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <SensorLine key={r.sensor} row={r} prefs={settings.sensors[r.sensor]} reload={reload} />
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function SensorLine({ row, prefs, reload }: { row: SensorRow; prefs?: { name: string; notify: boolean }; reload: () => void }) {
  const [name, setName] = useState(prefs?.name ?? "");
  const [notify, setNotify] = useState(prefs?.notify ?? true);
  const [error, setError] = useState<string | null>(null);
  const id = tid(row.sensor);
  const dirty = name !== (prefs?.name ?? "") || notify !== (prefs?.notify ?? true);
  // Follow what the monitor holds after each save or outside change.
  useEffect(() => {
    setName(prefs?.name ?? "");
    setNotify(prefs?.notify ?? true);
  }, [prefs?.name, prefs?.notify]);

  const save = async (nextNotify = notify) => {
    setError(null);
    const n = name.trim();
    if (n.length > 100) {
      setError("Keep the name under 100 characters.");
      return;
    }
    try {
      await updateSettings((s) => {
        s.sensors[row.sensor] = { main_field: s.sensors[row.sensor]?.main_field ?? "", name: n, notify: nextNotify };
      });
      reload();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <tr data-testid={`sensor-${id}`} data-sensor={row.sensor}>
      <td>
        <div>{row.serial || row.sensor}</div>
        {row.serial && row.serial !== row.sensor && <div class="muted small">{row.sensor}</div>}
        {row.source && <div class="muted small">{row.source}</div>}
      </td>
      <td>{row.quantity}</td>
      <td>
        <input
          type="text"
          aria-label={`Display name of ${row.serial || row.sensor}`}
          value={name}
          placeholder={row.serial || row.sensor}
          data-testid={`sensor-name-${id}`}
          onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)}
          onKeyDown={(e) => e.key === "Enter" && save()}
        />
        {error && (
          <small class="error" role="alert" data-testid={`sensor-error-${id}`}>
            {error}
          </small>
        )}
      </td>
      <td>
        <input
          type="checkbox"
          aria-label={`Notify for ${row.serial || row.sensor}`}
          checked={notify}
          data-testid={`sensor-notify-${id}`}
          onChange={(e) => {
            const v = (e.currentTarget as HTMLInputElement).checked;
            setNotify(v);
            save(v);
          }}
        />
      </td>
      <td>
        <Button testid={`sensor-save-${id}`} disabled={!dirty} onClick={() => save()}>
          Save
        </Button>
      </td>
    </tr>
  );
}
