/*
 * vision-tutor-card: one Vision Tutor camera on a dashboard.
 *
 * The latest analysed frame, what the student (or the teacher) saw in it, how sure it was (the
 * effective confidence beside the model's own, labelled with whose they are; for a teacher's
 * answer the student's effective confidence too), the safety state with the flags that persist
 * now, why the frame went to the teacher and what became of it, the prompt version, and a
 * timeline of the last results.
 *
 * Plain JavaScript, no build step: Home Assistant serves this file as it is. The rendering is
 * made of pure functions (exported at the bottom) so that it can be unit-tested with `node
 * --test` without a browser; the custom elements are only defined where a DOM exists.
 *
 *   type: custom:vision-tutor-card
 *   device_id: <the camera's Vision Tutor device>   # chosen in the card editor
 *   title: Kitchen                                 # optional; the device name otherwise
 *   timeline: 6                                    # results in the timeline (0 hides it)
 */

export const CARD_TYPE = "vision-tutor-card";
export const EDITOR_TYPE = "vision-tutor-card-editor";
export const DOMAIN = "vision_tutor";
export const DEFAULT_TIMELINE = 6;
const MAX_TIMELINE = 20;
/** How far back the timeline looks in the recorder's history when the card first loads. */
const HISTORY_HOURS = 6;

/** The camera entities of a Vision Tutor device, by their translation key. */
export const ROLES = Object.freeze({
  observation: "observation",
  confidence: "confidence",
  safety: "safety",
  safetyEvent: "safety_event",
  frame: "analysed_frame",
  analysis: "analysis",
  analyseNow: "analyse_now",
});

const UNAVAILABLE = new Set(["unavailable"]);
const MEDIA_SOURCE = `media-source://${DOMAIN}`;
const UNKNOWN = new Set(["unknown", ""]);

export function escapeHtml(value) {
  return String(value ?? "")
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/** A confidence of 0..1 as a whole percentage, or null when there is none. */
export function percent(value) {
  if (value === null || value === undefined || value === "" || Number.isNaN(Number(value))) {
    return null;
  }
  return Math.round(Math.min(1, Math.max(0, Number(value))) * 100);
}

/** The entity ids of a device's Vision Tutor entities, from the entity registry display list. */
export function findEntities(hass, deviceId) {
  const found = {};
  if (!hass || !deviceId) return found;
  for (const entry of Object.values(hass.entities ?? {})) {
    if (entry.device_id !== deviceId || entry.platform !== DOMAIN) continue;
    for (const [role, key] of Object.entries(ROLES)) {
      if (entry.translation_key === key) found[role] = entry.entity_id;
    }
  }
  return found;
}

/** The Vision Tutor camera devices (those with an observation sensor), for the editor and stubs. */
export function cameraDevices(hass) {
  const ids = new Set();
  for (const entry of Object.values(hass?.entities ?? {})) {
    if (entry.platform === DOMAIN && entry.translation_key === ROLES.observation && entry.device_id) {
      ids.add(entry.device_id);
    }
  }
  return [...ids];
}

/**
 * The media browser's page of a Vision Tutor media source id: a camera's event history
 * (`media-source://vision_tutor/<entry>/<camera>`) or one event of it (`.../<event>`). The
 * panel's path has one `type,content id` segment per level below the root. Null for anything else.
 */
export function mediaBrowserUrl(mediaId) {
  if (typeof mediaId !== "string" || !mediaId.startsWith(`${MEDIA_SOURCE}/`)) return null;
  const parts = mediaId.slice(MEDIA_SOURCE.length + 1).split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((part) => !/^[0-9A-Za-z_-]+$/.test(part))) {
    return null;
  }
  const camera = `${MEDIA_SOURCE}/${parts[0]}/${parts[1]}`;
  const levels = [["app", MEDIA_SOURCE], ["directory", camera]];
  if (parts.length === 3) levels.push(["image", mediaId]);
  return `/media-browser/browser/${levels.map(([type, id]) => encodeURIComponent(`${type},${id}`)).join("/")}`;
}

/** The camera's whole event history in the media browser, from one of its events. */
export function historyUrl(mediaId) {
  if (typeof mediaId !== "string") return null;
  // media-source: / "" / vision_tutor / entry / camera / event
  const parts = mediaId.split("/");
  return parts.length === 6 && mediaBrowserUrl(mediaId) ? mediaBrowserUrl(parts.slice(0, -1).join("/")) : null;
}

function deviceName(hass, deviceId) {
  const device = hass?.devices?.[deviceId];
  return device?.name_by_user || device?.name || null;
}

/** One timeline row from an observation sensor state (live or from the history API). */
export function timelineEntry(state, attributes) {
  const attrs = attributes ?? {};
  if (!state || UNAVAILABLE.has(state) || UNKNOWN.has(state) || !attrs.analysed_at) return null;
  return {
    at: String(attrs.analysed_at),
    summary: String(state),
    source: attrs.source === "teacher" ? "teacher" : "student",
    flags: Array.isArray(attrs.safety_flags) ? attrs.safety_flags.map(String) : [],
    confidence: percent(attrs.effective_confidence),
    escalated: Boolean(attrs.escalated),
    reason: attrs.escalation_reason ?? null,
    error: Boolean(attrs.student_error),
    // The frame's event in the history (Media → Vision Tutor), when it was kept.
    snapshot: typeof attrs.snapshot === "string" && attrs.snapshot ? attrs.snapshot : null,
  };
}

/**
 * Add an entry to a timeline (newest first, at most `limit`). A frame's teacher verdict replaces
 * the student's answer about the same frame: both carry the frame's analysed_at.
 */
export function mergeTimeline(timeline, entry, limit = DEFAULT_TIMELINE) {
  if (!entry) return timeline;
  const rest = timeline.filter(
    (item) => !(item.at === entry.at && (item.source === entry.source || entry.source === "teacher")),
  );
  if (entry.source === "student" && timeline.some((item) => item.at === entry.at && item.source === "teacher")) {
    return timeline; // the teacher already spoke about this frame
  }
  return [...rest, entry]
    .sort((a, b) => Date.parse(b.at) - Date.parse(a.at))
    .slice(0, Math.max(0, limit));
}

/** Timeline entries from `history/history_during_period` (compressed states: s, a, lu). */
export function historyToTimeline(response, entityId, limit = DEFAULT_TIMELINE) {
  let timeline = [];
  let attributes = {};
  for (const row of response?.[entityId] ?? []) {
    // Compressed history repeats attributes only when they change.
    if (row.a) attributes = row.a;
    timeline = mergeTimeline(timeline, timelineEntry(row.s, attributes), limit);
  }
  return timeline;
}

function stateOf(hass, entityId) {
  return entityId ? hass?.states?.[entityId] : undefined;
}

function isUsable(state) {
  return state !== undefined && !UNAVAILABLE.has(state.state);
}

/**
 * Everything the card shows, from Home Assistant's state: a plain object, so tests can check
 * it without a DOM. `status` is "ok", or why there is nothing (or only part) to show.
 */
export function buildModel(hass, config, timeline = []) {
  const deviceId = config?.device_id;
  const title = config?.title || deviceName(hass, deviceId) || "Vision Tutor";
  if (!deviceId) {
    return { status: "unconfigured", title, message: "Choose a Vision Tutor camera in the card's settings." };
  }
  const ids = findEntities(hass, deviceId);
  if (!ids.observation) {
    return {
      status: "missing",
      title,
      message:
        "This camera has no Vision Tutor entities. It may have been removed from the Vision Tutor " +
        "integration, or the integration is not loaded; choose another camera in the card's settings.",
    };
  }
  const observation = stateOf(hass, ids.observation);
  const analysisSwitch = stateOf(hass, ids.analysis);
  // The camera's analysis switch is off: no frame is looked at, so nothing is "no hazard".
  const paused = analysisSwitch?.state === "off" || Boolean(stateOf(hass, ids.safety)?.attributes?.paused);
  if (!isUsable(observation)) {
    return {
      status: "unavailable",
      title,
      message:
        "The camera's analysis is unavailable: Vision Tutor cannot reach the camera or the " +
        "student's Ollama server. It shows up again with the next analysed frame.",
      timeline,
    };
  }
  const attrs = observation.attributes ?? {};
  const frameState = stateOf(hass, ids.frame);
  const safetyState = stateOf(hass, ids.safety);
  const safetyAttrs = safetyState?.attributes ?? {};
  const waiting = UNKNOWN.has(observation.state);
  let frame = null;
  if (isUsable(frameState) && frameState.attributes?.entity_picture && !UNKNOWN.has(frameState.state)) {
    const picture = frameState.attributes.entity_picture;
    // The proxy URL stays the same while the frame changes: its time makes the browser fetch it.
    const separator = picture.includes("?") ? "&" : "?";
    frame = { url: `${picture}${separator}v=${encodeURIComponent(frameState.state)}`, entityId: ids.frame };
  }
  return {
    status: waiting ? "waiting" : "ok",
    title,
    message: waiting
      ? paused
        ? "Analysis is paused: turn the camera's Analysis switch on."
        : "Waiting for the first analysed frame."
      : null,
    paused,
    entities: ids,
    frame,
    summary: waiting ? null : observation.state,
    observations: Array.isArray(attrs.observations) ? attrs.observations.map(String) : [],
    confidence: {
      // Whose answer is on display is whose confidences these are.
      owner: attrs.source === "teacher" ? "teacher" : "student",
      effective: percent(attrs.effective_confidence),
      model: percent(attrs.confidence),
      // Beside a teacher's answer, what the student said of its own.
      student:
        attrs.source === "teacher"
          ? {
              effective: percent(attrs.student_effective_confidence),
              model: percent(attrs.student_confidence),
            }
          : null,
    },
    safety: {
      known: isUsable(safetyState) && (safetyState.state === "on" || safetyState.state === "off"),
      on: safetyState?.state === "on",
      flags: Array.isArray(safetyAttrs.flags) ? safetyAttrs.flags.map(String) : [],
      confirmedByTeacher: Boolean(safetyAttrs.confirmed_by_teacher),
      since: safetyAttrs.since ?? null,
      paused,
      window: windowProgress(safetyAttrs.window),
    },
    answerFlags: Array.isArray(attrs.safety_flags) ? attrs.safety_flags.map(String) : [],
    source: attrs.source === "teacher" ? "teacher" : "student",
    escalated: Boolean(attrs.escalated),
    escalationReason: attrs.escalation_reason ?? null,
    escalationDetail: attrs.escalation_detail ?? null,
    teacherUnavailable: Boolean(attrs.teacher_unavailable),
    teacherStatus: typeof attrs.teacher === "string" && attrs.teacher ? attrs.teacher : null,
    studentError: attrs.student_error ?? null,
    promptVersion: attrs.prompt_version ?? null,
    model: attrs.model ?? null,
    latencyMs: typeof attrs.latency_ms === "number" ? attrs.latency_ms : null,
    analysedAt: attrs.analysed_at ?? null,
    restored: Boolean(attrs.restored),
    timeline,
  };
}

const REASONS = {
  safety: "safety",
  student_error: "unreadable answer",
  low_confidence: "low confidence",
  temporal: "new flag",
  audit: "random audit",
};

export function reasonText(reason) {
  return REASONS[reason] ?? (reason ? String(reason).replaceAll("_", " ") : "");
}

export function formatTime(value, locale) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString(locale || undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function confidenceBar(label, value, cls) {
  const width = value ?? 0;
  const text = value === null ? "–" : `${value} %`;
  return `
      <div class="bar-row ${cls}">
        <span class="bar-label">${escapeHtml(label)}</span>
        <span class="bar" role="meter" aria-label="${escapeHtml(label)}" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${value ?? ""}">
          <span class="bar-fill" style="width: ${width}%"></span>
        </span>
        <span class="bar-value">${text}</span>
      </div>`;
}

/** The safety sensor's k-of-n evidence on its way ({phase, frames, needed}), or null. */
export function windowProgress(window) {
  if (!window || typeof window !== "object") return null;
  const frames = Number(window.frames);
  const needed = Number(window.needed);
  if (!["watching", "clearing"].includes(window.phase) || !Number.isFinite(frames) || !Number.isFinite(needed)) {
    return null;
  }
  return { phase: window.phase, frames, needed };
}

/** "watching: 1 of 2 flagged frames", "clearing: 2 of 3 clean frames"; "" without progress. */
export function windowText(progress) {
  if (!progress) return "";
  const kind = progress.phase === "watching" ? "flagged" : "clean";
  return `${progress.phase}: ${progress.frames} of ${progress.needed} ${kind} frames`;
}

function renderSafety(safety) {
  if (safety.paused) {
    return `<div class="safety paused" data-safety="paused"><ha-icon icon="mdi:pause-circle-outline"></ha-icon><span>Analysis paused: no frames are looked at</span></div>`;
  }
  const progress = safety.window
    ? `<span class="window" data-phase="${escapeHtml(safety.window.phase)}">${escapeHtml(windowText(safety.window))}</span>`
    : "";
  if (!safety.known) {
    return `<div class="safety unknown" data-safety="unknown"><ha-icon icon="mdi:shield-off-outline"></ha-icon><span>Safety unknown</span></div>`;
  }
  if (!safety.on) {
    // A flagged frame short of the trigger: not "no hazard", but not a hazard yet either.
    const label = progress ? "No hazard yet" : "No hazard";
    return `<div class="safety clear" data-safety="off"><ha-icon icon="mdi:shield-check"></ha-icon><span>${label}</span>${progress}</div>`;
  }
  const flags = safety.flags.map((flag) => `<span class="flag">${escapeHtml(flag)}</span>`).join("");
  const teacher = safety.confirmedByTeacher
    ? `<span class="confirmed">confirmed by the teacher</span>`
    : "";
  return `<div class="safety hazard" data-safety="on"><ha-icon icon="mdi:shield-alert"></ha-icon><span>Hazard</span>${flags}${teacher}${progress}</div>`;
}

function renderTimeline(timeline, locale) {
  if (!timeline.length) return "";
  const rows = timeline
    .map((item) => {
      const kind = item.error ? "error" : item.flags.length ? "flagged" : "clear";
      const source = item.source === "teacher" ? `<span class="badge teacher">teacher</span>` : "";
      const confidence = item.confidence === null ? "" : `<span class="t-conf">${item.confidence} %</span>`;
      const escalated = item.escalated ? `<span class="t-reason">${escapeHtml(reasonText(item.reason))}</span>` : "";
      const link = mediaBrowserUrl(item.snapshot);
      // A kept frame opens in the media browser (the card navigates there itself).
      const summary = link
        ? `<a class="t-summary t-link" href="${escapeHtml(link)}" data-navigate title="Open in the media browser"><ha-icon icon="mdi:image-search-outline"></ha-icon>${escapeHtml(item.summary)}</a>`
        : `<span class="t-summary">${escapeHtml(item.summary)}</span>`;
      return `<li class="${kind}" data-source="${item.source}"${link ? ` data-snapshot="${escapeHtml(item.snapshot)}"` : ""}><span class="dot"></span><span class="t-time">${escapeHtml(formatTime(item.at, locale))}</span>${summary}${source}${escalated}${confidence}</li>`;
    })
    .join("");
  const kept = timeline.find((item) => historyUrl(item.snapshot));
  const all = kept
    ? ` · <a class="history-link" href="${escapeHtml(historyUrl(kept.snapshot))}" data-navigate>Event history</a>`
    : "";
  return `<div class="section-title">Recent results${all}</div><ol class="timeline">${rows}</ol>`;
}

/** The card's inner HTML for a model from buildModel; every value from Home Assistant is escaped. */
export function renderCard(model, { locale, showTimeline = true } = {}) {
  const header = `<div class="header"><span class="title">${escapeHtml(model.title)}</span></div>`;
  if (model.status === "unconfigured" || model.status === "missing" || model.status === "unavailable") {
    const timeline = showTimeline ? renderTimeline(model.timeline ?? [], locale) : "";
    return `${header}<div class="message ${model.status}" role="status" data-status="${model.status}"><ha-icon icon="mdi:cctv-off"></ha-icon><span>${escapeHtml(model.message)}</span></div>${timeline}`;
  }
  const frame = model.frame
    ? `<img class="frame" src="${escapeHtml(model.frame.url)}" alt="Last analysed frame of ${escapeHtml(model.title)}">`
    : `<div class="frame placeholder"><ha-icon icon="mdi:image-off-outline"></ha-icon></div>`;
  if (model.status === "waiting") {
    const kind = model.paused ? "paused" : "waiting";
    return `${header}${frame}<div class="message ${kind}" role="status" data-status="${kind}"><span>${escapeHtml(model.message)}</span></div>`;
  }
  const source =
    model.source === "teacher"
      ? `<span class="badge teacher" data-source="teacher">Teacher</span>`
      : `<span class="badge student" data-source="student">Student</span>`;
  const observations = model.observations.length
    ? `<ul class="observations">${model.observations.map((o) => `<li>${escapeHtml(o)}</li>`).join("")}</ul>`
    : "";
  let escalation = "";
  if (model.escalated) {
    const detail = model.escalationDetail ? ` — ${escapeHtml(model.escalationDetail)}` : "";
    const unavailable = model.teacherUnavailable && !model.teacherStatus ? " (no teacher available)" : "";
    const status = model.teacherStatus
      ? `<span class="teacher-status" data-status="${model.teacherStatus.startsWith("not reviewed") ? "not-reviewed" : escapeHtml(model.teacherStatus.split(/[ :]/)[0])}">Teacher: ${escapeHtml(model.teacherStatus)}</span>`
      : "";
    escalation = `<div class="escalation" data-reason="${escapeHtml(model.escalationReason ?? "")}"><ha-icon icon="mdi:school-outline"></ha-icon><span>Sent to the teacher: <b>${escapeHtml(reasonText(model.escalationReason))}</b>${detail}${unavailable}${status ? ` · ${status}` : ""}</span></div>`;
  }
  const error = model.studentError
    ? `<div class="student-error">The student's answer could not be read: ${escapeHtml(model.studentError)}</div>`
    : "";
  const meta = [
    model.model ? escapeHtml(model.model) : null,
    model.promptVersion ? `prompt <span class="prompt-version">${escapeHtml(model.promptVersion)}</span>` : null,
    model.latencyMs !== null ? `${escapeHtml(model.latencyMs)} ms` : null,
    model.analysedAt ? escapeHtml(formatTime(model.analysedAt, locale)) : null,
    model.restored ? "restored after a restart" : null,
  ]
    .filter(Boolean)
    .join(" · ");
  return `${header}
    <div class="body">
      ${frame}
      <div class="details">
        <div class="summary-row">${source}<span class="summary">${escapeHtml(model.summary)}</span></div>
        ${observations}
        ${renderSafety(model.safety)}
        <div class="confidence" data-owner="${model.confidence.owner}">
          ${confidenceBar(`Effective confidence (${model.confidence.owner})`, model.confidence.effective, "effective")}
          ${confidenceBar(`Stated by the ${model.confidence.owner}`, model.confidence.model, "stated")}
          ${model.confidence.student ? confidenceBar("Effective confidence (student)", model.confidence.student.effective, "student") : ""}
        </div>
        ${escalation}
        ${error}
        <div class="meta">${meta}</div>
      </div>
    </div>
    ${showTimeline ? renderTimeline(model.timeline, locale) : ""}`;
}

export const STYLES = `
  :host { display: block; }
  ha-card { padding: 12px 16px 16px; color: var(--primary-text-color); overflow: hidden; }
  .header { display: flex; align-items: center; gap: 8px; margin-bottom: 8px; }
  .title { font-size: var(--ha-card-header-font-size, 20px); font-weight: 500; }
  .body { display: flex; flex-wrap: wrap; gap: 12px 16px; }
  .frame { flex: 1 1 240px; max-width: 100%; min-width: 0; aspect-ratio: 16 / 9; object-fit: cover;
    border-radius: var(--ha-card-border-radius, 12px); background: var(--secondary-background-color); }
  .frame.placeholder { display: flex; align-items: center; justify-content: center; color: var(--secondary-text-color); }
  .details { flex: 1 1 260px; min-width: 0; display: flex; flex-direction: column; gap: 8px; }
  .summary-row { display: flex; align-items: baseline; gap: 8px; }
  .summary { font-size: 1.05em; line-height: 1.35; overflow-wrap: anywhere; }
  .badge { flex: none; font-size: 0.75em; font-weight: 500; text-transform: uppercase; letter-spacing: 0.04em;
    padding: 2px 6px; border-radius: 6px; background: var(--secondary-background-color); color: var(--secondary-text-color); }
  .badge.teacher { background: var(--primary-color); color: var(--text-primary-color, #fff); }
  .observations { margin: 0; padding-left: 20px; color: var(--secondary-text-color); font-size: 0.92em; }
  .safety { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; font-weight: 500; }
  .safety.clear { color: var(--success-color, #43a047); }
  .safety.hazard { color: var(--error-color, #db4437); }
  .safety.unknown, .safety.paused { color: var(--secondary-text-color); }
  .window { font-size: 0.85em; font-weight: 400; color: var(--secondary-text-color); }
  .flag { padding: 1px 8px; border-radius: 10px; font-size: 0.85em; color: var(--text-primary-color, #fff);
    background: var(--error-color, #db4437); }
  .confirmed { font-size: 0.85em; font-weight: 400; color: var(--primary-text-color); }
  .bar-row { display: grid; grid-template-columns: minmax(90px, auto) 1fr 3.5em; align-items: center; gap: 8px; font-size: 0.9em; }
  .bar-label { color: var(--secondary-text-color); }
  .bar { height: 8px; border-radius: 4px; background: var(--divider-color, rgba(127, 127, 127, 0.3)); overflow: hidden; }
  .bar-fill { display: block; height: 100%; border-radius: 4px; background: var(--primary-color); }
  .stated .bar-fill { background: var(--secondary-text-color); opacity: 0.6; }
  .bar-value { text-align: right; font-variant-numeric: tabular-nums; }
  .escalation { display: flex; gap: 6px; align-items: flex-start; font-size: 0.9em; }
  .escalation ha-icon, .message ha-icon, .safety ha-icon { --mdc-icon-size: 20px; flex: none; }
  .student-error { color: var(--warning-color, #ffa600); font-size: 0.9em; }
  .meta { color: var(--secondary-text-color); font-size: 0.8em; }
  .message { display: flex; gap: 8px; align-items: center; padding: 8px 0; color: var(--secondary-text-color); }
  .message.unavailable, .message.missing { color: var(--warning-color, #ffa600); }
  .section-title { margin: 14px 0 4px; font-size: 0.85em; font-weight: 500; color: var(--secondary-text-color); }
  .timeline { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 2px; font-size: 0.85em; }
  .timeline li { display: flex; align-items: center; gap: 8px; min-width: 0; }
  .dot { flex: none; width: 8px; height: 8px; border-radius: 50%; background: var(--success-color, #43a047); }
  .flagged .dot { background: var(--error-color, #db4437); }
  .error .dot { background: var(--warning-color, #ffa600); }
  .t-time, .t-conf, .t-reason { flex: none; color: var(--secondary-text-color); font-variant-numeric: tabular-nums; }
  .t-summary { flex: 1 1 auto; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  a.t-link, a.history-link { color: var(--primary-color); text-decoration: none; cursor: pointer; }
  a.t-link:hover, a.history-link:hover { text-decoration: underline; }
  a.t-link ha-icon { --mdc-icon-size: 16px; margin-right: 4px; vertical-align: -3px; }
  @media (max-width: 480px) { .t-reason { display: none; } }
`;

// ------------------------------------------------------------------------------------------------
// Custom elements: only where there is a DOM (not under `node --test`).

const Base = globalThis.HTMLElement ?? class {};

export class VisionTutorCard extends Base {
  constructor() {
    super();
    this._timeline = [];
    this._historyFor = null;
    this._html = null;
  }

  static getConfigElement() {
    return document.createElement(EDITOR_TYPE);
  }

  static getStubConfig(hass) {
    const [deviceId] = cameraDevices(hass);
    return deviceId ? { device_id: deviceId } : {};
  }

  setConfig(config) {
    if (!config || typeof config !== "object") throw new Error("Invalid configuration");
    const limit = config.timeline ?? DEFAULT_TIMELINE;
    if (!Number.isInteger(limit) || limit < 0 || limit > MAX_TIMELINE) {
      throw new Error(`timeline must be a whole number from 0 to ${MAX_TIMELINE}`);
    }
    if (this._config?.device_id !== config.device_id) {
      this._timeline = [];
      this._historyFor = null;
    }
    this._config = { ...config, timeline: limit };
    this._render();
  }

  set hass(hass) {
    this._hass = hass;
    const ids = findEntities(hass, this._config?.device_id);
    if (ids.observation) {
      const state = hass.states[ids.observation];
      this._timeline = mergeTimeline(
        this._timeline,
        timelineEntry(state?.state, state?.attributes),
        this._config.timeline,
      );
      this._loadHistory(ids.observation);
    }
    this._render();
  }

  get hass() {
    return this._hass;
  }

  getCardSize() {
    return 7;
  }

  getGridOptions() {
    return { columns: 12, min_columns: 6, rows: "auto" };
  }

  async _loadHistory(entityId) {
    if (this._historyFor === entityId || !this._config.timeline) return;
    this._historyFor = entityId;
    try {
      const start = new Date(Date.now() - HISTORY_HOURS * 3600 * 1000).toISOString();
      const response = await this._hass.callWS({
        type: "history/history_during_period",
        start_time: start,
        entity_ids: [entityId],
        minimal_response: false,
        no_attributes: false,
        significant_changes_only: false,
      });
      for (const entry of historyToTimeline(response, entityId, this._config.timeline)) {
        this._timeline = mergeTimeline(this._timeline, entry, this._config.timeline);
      }
      this._render();
    } catch (err) {
      // Without the recorder the timeline starts from what the card sees live.
      console.debug("vision-tutor-card: no history for the timeline", err);
    }
  }

  _render() {
    if (!this._config || !this._hass) return;
    if (!this.shadowRoot) this.attachShadow({ mode: "open" });
    const model = buildModel(this._hass, this._config, this._timeline);
    const html = renderCard(model, {
      locale: this._hass.locale?.language ?? this._hass.language,
      showTimeline: this._config.timeline > 0,
    });
    if (html === this._html) return; // unchanged: keep the image from reloading
    this._html = html;
    this.shadowRoot.innerHTML = `<style>${STYLES}</style><ha-card data-status="${model.status}">${html}</ha-card>`;
    if (!this._navigates) {
      this._navigates = true;
      // Links into Home Assistant (the media browser) change the page without reloading it.
      this.shadowRoot.addEventListener("click", (event) => {
        const link = event.composedPath().find((el) => el.dataset && "navigate" in el.dataset);
        if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
        event.preventDefault();
        history.pushState(null, "", link.getAttribute("href"));
        window.dispatchEvent(new CustomEvent("location-changed", { detail: { replace: false } }));
      });
    }
  }
}

/**
 * The card's configuration after an edit in the editor. An emptied field is left out (the card
 * then uses its default), so the form never refills it while the user is typing: clearing the
 * timeline and typing 25 gives 25, not 625.
 */
export function editedConfig(config, value) {
  const edited = { ...config, ...value };
  for (const key of ["title", "timeline"]) {
    if (edited[key] === undefined || edited[key] === null || edited[key] === "") delete edited[key];
  }
  return edited;
}

export class VisionTutorCardEditor extends Base {
  setConfig(config) {
    this._config = { ...config };
    this._render();
  }

  set hass(hass) {
    this._hass = hass;
    this._render();
  }

  _schema() {
    return [
      {
        name: "device_id",
        required: true,
        selector: { device: { filter: [{ integration: DOMAIN, model: "Camera analysis" }] } },
      },
      { name: "title", selector: { text: {} } },
      { name: "timeline", selector: { number: { min: 0, max: MAX_TIMELINE, mode: "box" } } },
    ];
  }

  _render() {
    if (!this._hass || !this._config) return;
    if (!this._form) {
      this._form = document.createElement("ha-form");
      this._form.computeLabel = (field) =>
        ({ device_id: "Camera", title: "Title (optional)", timeline: "Results in the timeline" })[field.name] ??
        field.name;
      this._form.computeHelper = (field) =>
        field.name === "timeline" ? `Empty: ${DEFAULT_TIMELINE}; 0 hides the timeline.` : "";
      this._form.addEventListener("value-changed", (event) => {
        const config = editedConfig(this._config, event.detail.value);
        this._config = config;
        this.dispatchEvent(new CustomEvent("config-changed", { detail: { config }, bubbles: true, composed: true }));
      });
      this.appendChild(this._form);
    }
    this._form.hass = this._hass;
    this._form.schema = this._schema();
    // What the user typed, not the default: a cleared field stays empty while they type.
    this._form.data = { ...this._config };
  }
}

if (globalThis.customElements) {
  // The card can be loaded twice (as a dashboard resource and by hand): define it once.
  if (!customElements.get(CARD_TYPE)) customElements.define(CARD_TYPE, VisionTutorCard);
  if (!customElements.get(EDITOR_TYPE)) customElements.define(EDITOR_TYPE, VisionTutorCardEditor);
  window.customCards = window.customCards ?? [];
  if (!window.customCards.some((card) => card.type === CARD_TYPE)) {
    window.customCards.push({
      type: CARD_TYPE,
      name: "Vision Tutor camera",
      description: "What a camera's student model sees, how sure it is, the safety state and the teacher's verdicts.",
      preview: true,
      documentationURL: "https://github.com/vision-tutor/vision-tutor#dashboard",
    });
  }
}
