// Unit tests of the card's rendering logic, run by `node --test` (tests/components/test_frontend.py
// runs them under pytest). No DOM: the card's model and HTML come from pure functions.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

// The card is served as-is to browsers; a data: URL loads it as an ES module without a package.json.
const CARD = new URL("../../../custom_components/vision_tutor/frontend/vision-tutor-card.js", import.meta.url);
const card = await import(`data:text/javascript;base64,${readFileSync(CARD).toString("base64")}`);

const DEVICE = "dev-kitchen";
const ANALYSED_AT = "2026-11-21T10:00:05+00:00";

function registry(deviceId = DEVICE, prefix = "kitchen") {
  const entry = (domain, key) => ({
    entity_id: `${domain}.${prefix}_${key}`,
    device_id: deviceId,
    platform: "vision_tutor",
    translation_key: key,
  });
  return {
    [`sensor.${prefix}_observation`]: entry("sensor", "observation"),
    [`sensor.${prefix}_confidence`]: entry("sensor", "confidence"),
    [`binary_sensor.${prefix}_safety`]: entry("binary_sensor", "safety"),
    [`event.${prefix}_safety_event`]: entry("event", "safety_event"),
    [`image.${prefix}_analysed_frame`]: entry("image", "analysed_frame"),
  };
}

function observation(overrides = {}) {
  return {
    state: "An empty kitchen by day",
    attributes: {
      observations: ["kitchen", "counter"],
      safety_flags: [],
      confidence: 0.95,
      effective_confidence: 0.876,
      source: "student",
      escalated: false,
      escalation_reason: null,
      escalation_detail: "",
      teacher_unavailable: false,
      student_error: null,
      prompt_version: "builtin",
      model: "gemma4:e2b",
      latency_ms: 112,
      analysed_at: ANALYSED_AT,
      ...overrides,
    },
  };
}

function hass({ obs = observation(), safety, frame, entities = registry(), extraStates = {} } = {}) {
  return {
    language: "en",
    locale: { language: "en-GB" },
    entities,
    devices: { [DEVICE]: { name: "Kitchen" } },
    states: {
      "sensor.kitchen_observation": obs,
      "binary_sensor.kitchen_safety": safety ?? {
        state: "off",
        attributes: { flags: [], confirmed_by_teacher: false, since: null },
      },
      "image.kitchen_analysed_frame": frame ?? {
        state: ANALYSED_AT,
        attributes: { entity_picture: "/api/image_proxy/image.kitchen_analysed_frame?token=abc" },
      },
      ...extraStates,
    },
  };
}

const teacherVerdict = () =>
  hass({
    obs: observation({
      source: "teacher",
      escalated: true,
      escalation_reason: "safety",
      escalation_detail: "safety flag: fire",
      safety_flags: ["fire", "smoke"],
      confidence: 0.93,
      effective_confidence: 0.93,
      student_confidence: 0.9,
      student_effective_confidence: 0.61,
      teacher: "reviewed",
    }),
    safety: {
      state: "on",
      attributes: { flags: ["fire", "smoke"], confirmed_by_teacher: true, since: ANALYSED_AT },
    },
  });

test("finds a device's entities by translation key, ignoring other devices and platforms", () => {
  const entities = {
    ...registry(),
    ...registry("dev-hall", "hall"),
    "sensor.other": { entity_id: "sensor.other", device_id: DEVICE, platform: "mqtt", translation_key: "observation" },
  };
  assert.deepEqual(card.findEntities({ entities }, DEVICE), {
    observation: "sensor.kitchen_observation",
    confidence: "sensor.kitchen_confidence",
    safety: "binary_sensor.kitchen_safety",
    safetyEvent: "event.kitchen_safety_event",
    frame: "image.kitchen_analysed_frame",
  });
  assert.deepEqual(card.cameraDevices({ entities }).sort(), ["dev-hall", DEVICE]);
  assert.deepEqual(card.VisionTutorCard.getStubConfig({ entities: registry() }), { device_id: DEVICE });
  assert.deepEqual(card.VisionTutorCard.getStubConfig({ entities: {} }), {});
});

test("a routine result: summary, observations, both confidences, no hazard, the student as source", () => {
  const model = card.buildModel(hass(), { device_id: DEVICE });
  assert.equal(model.status, "ok");
  assert.equal(model.title, "Kitchen");
  assert.equal(model.summary, "An empty kitchen by day");
  assert.deepEqual(model.observations, ["kitchen", "counter"]);
  assert.deepEqual(model.confidence, { owner: "student", effective: 88, model: 95, student: null });
  assert.equal(model.safety.on, false);
  assert.equal(model.source, "student");
  assert.equal(model.promptVersion, "builtin");
  // The image proxy URL does not change with the frame: the frame's time is added to it.
  assert.equal(
    model.frame.url,
    `/api/image_proxy/image.kitchen_analysed_frame?token=abc&v=${encodeURIComponent(ANALYSED_AT)}`,
  );

  const html = card.renderCard(model, { locale: "en-GB" });
  assert.match(html, /<span class="summary">An empty kitchen by day<\/span>/);
  assert.match(html, /data-source="student"/);
  assert.match(html, /data-safety="off"/);
  assert.match(html, /Effective confidence \(student\)[\s\S]*?<span class="bar-value">88 %<\/span>/);
  assert.match(html, /Stated by the student[\s\S]*?<span class="bar-value">95 %<\/span>/);
  assert.match(html, /style="width: 88%"/);
  assert.match(html, /prompt <span class="prompt-version">builtin<\/span>/);
  assert.doesNotMatch(html, /Sent to the teacher/);
});

test("a teacher verdict on a safety escalation: teacher as source, flags, confirmation, the reason", () => {
  const model = card.buildModel(teacherVerdict(), { device_id: DEVICE, title: "Cooker" });
  assert.equal(model.title, "Cooker");
  assert.equal(model.source, "teacher");
  assert.deepEqual(model.safety, {
    known: true,
    on: true,
    flags: ["fire", "smoke"],
    confirmedByTeacher: true,
    since: ANALYSED_AT,
    paused: false,
    window: null,
  });
  const html = card.renderCard(model);
  assert.match(html, /data-source="teacher">Teacher</);
  assert.match(html, /data-safety="on"/);
  assert.match(html, /<span class="flag">fire<\/span><span class="flag">smoke<\/span>/);
  assert.match(html, /confirmed by the teacher/);
  assert.match(html, /Sent to the teacher: <b>safety<\/b> — safety flag: fire/);
  assert.match(html, /Teacher: reviewed/);
  // The teacher's confidences are labelled as the teacher's; the student's stays beside them.
  assert.deepEqual(model.confidence, {
    owner: "teacher",
    effective: 93,
    model: 93,
    student: { effective: 61, model: 90 },
  });
  assert.match(html, /Effective confidence \(teacher\)[\s\S]*?<span class="bar-value">93 %<\/span>/);
  assert.match(html, /Stated by the teacher[\s\S]*?<span class="bar-value">93 %<\/span>/);
  assert.match(html, /Effective confidence \(student\)[\s\S]*?<span class="bar-value">61 %<\/span>/);
});

test("a safety review the teacher did not do is said, and the student's flags stay", () => {
  const model = card.buildModel(
    hass({
      obs: observation({
        escalated: true,
        escalation_reason: "safety",
        escalation_detail: "safety flag: smoke; negated, not flagged: fire",
        safety_flags: ["smoke"],
        teacher: "not reviewed (failed: the teacher's answer is not JSON)",
        teacher_unavailable: false,
      }),
      safety: {
        state: "on",
        attributes: { flags: ["smoke"], confirmed_by_teacher: false, since: ANALYSED_AT },
      },
    }),
    { device_id: DEVICE },
  );
  assert.equal(model.teacherStatus, "not reviewed (failed: the teacher's answer is not JSON)");
  assert.deepEqual(model.safety.flags, ["smoke"]);
  const html = card.renderCard(model);
  assert.match(html, /data-status="not-reviewed">Teacher: not reviewed \(failed: the teacher&#39;s answer is not JSON\)/);
  assert.match(html, /<span class="flag">smoke<\/span>/);
  assert.doesNotMatch(html, /<span class="flag">fire<\/span>/);
});

test("a student error and a missing teacher are said in words", () => {
  const model = card.buildModel(
    hass({
      obs: observation({
        student_error: "not JSON",
        escalated: true,
        escalation_reason: "student_error",
        teacher_unavailable: true,
        confidence: null,
        effective_confidence: null,
      }),
    }),
    { device_id: DEVICE },
  );
  const html = card.renderCard(model);
  assert.match(html, /could not be read: not JSON/);
  assert.match(html, /<b>unreadable answer<\/b>.*\(no teacher available\)/);
  assert.match(html, /<span class="bar-value">–<\/span>/);
  assert.match(html, /style="width: 0%"/);
});

test("everything from Home Assistant is escaped", () => {
  const model = card.buildModel(
    hass({ obs: observation({ observations: ["<img src=x onerror=alert(1)>"] }) }),
    { device_id: DEVICE, title: "<b>x</b>" },
  );
  model.summary = '"><script>alert(1)</script>';
  const html = card.renderCard(model);
  assert.doesNotMatch(html, /<script>|<img src=x|<b>x<\/b>/);
  assert.match(html, /&lt;script&gt;/);
});

test("no device chosen, a device without entities, unavailable entities: a readable message", () => {
  const unconfigured = card.buildModel(hass(), {});
  assert.equal(unconfigured.status, "unconfigured");
  assert.match(card.renderCard(unconfigured), /Choose a Vision Tutor camera/);

  const missing = card.buildModel(hass({ entities: {} }), { device_id: DEVICE });
  assert.equal(missing.status, "missing");
  assert.match(card.renderCard(missing), /data-status="missing"[\s\S]*has no Vision Tutor entities/);

  const gone = hass();
  delete gone.states["sensor.kitchen_observation"];
  assert.equal(card.buildModel(gone, { device_id: DEVICE }).status, "unavailable");

  const unavailable = card.buildModel(hass({ obs: { state: "unavailable", attributes: {} } }), {
    device_id: DEVICE,
  });
  assert.equal(unavailable.status, "unavailable");
  assert.match(card.renderCard(unavailable), /role="status"[\s\S]*analysis is unavailable/);
});

test("before the first analysis it waits; without a frame or safety state it says so", () => {
  const waiting = card.buildModel(
    hass({ obs: { state: "unknown", attributes: {} }, frame: { state: "unknown", attributes: {} } }),
    { device_id: DEVICE },
  );
  assert.equal(waiting.status, "waiting");
  assert.equal(waiting.frame, null);
  assert.match(card.renderCard(waiting), /Waiting for the first analysed frame/);

  const noSafety = hass({ safety: { state: "unavailable", attributes: {} } });
  const html = card.renderCard(card.buildModel(noSafety, { device_id: DEVICE }));
  assert.match(html, /data-safety="unknown"/);
});

test("the timeline keeps the newest results, and a teacher verdict replaces the student's answer", () => {
  let timeline = [];
  const at = (s) => `2026-11-21T10:00:${String(s).padStart(2, "0")}+00:00`;
  for (let s = 0; s < 8; s++) {
    timeline = card.mergeTimeline(
      timeline,
      card.timelineEntry(`frame ${s}`, { analysed_at: at(s), effective_confidence: 0.9 }),
      4,
    );
  }
  assert.deepEqual(timeline.map((e) => e.summary), ["frame 7", "frame 6", "frame 5", "frame 4"]);
  // The same frame seen again changes nothing.
  assert.equal(card.mergeTimeline(timeline, card.timelineEntry("frame 7", { analysed_at: at(7) }), 4).length, 4);

  const verdict = card.timelineEntry("Pan fire", {
    analysed_at: at(7),
    source: "teacher",
    safety_flags: ["fire"],
    escalated: true,
    escalation_reason: "safety",
    effective_confidence: 0.6,
  });
  timeline = card.mergeTimeline(timeline, verdict, 4);
  assert.deepEqual(timeline.map((e) => [e.summary, e.source]).slice(0, 2), [
    ["Pan fire", "teacher"],
    ["frame 6", "student"],
  ]);
  // A late student update of that frame does not undo the verdict.
  timeline = card.mergeTimeline(timeline, card.timelineEntry("frame 7", { analysed_at: at(7) }), 4);
  assert.equal(timeline[0].source, "teacher");

  const html = card.renderCard(card.buildModel(hass(), { device_id: DEVICE }, timeline), { locale: "en-GB" });
  assert.match(html, /<li class="flagged" data-source="teacher">.*Pan fire.*teacher.*safety.*60 %/);
  assert.equal((html.match(/<li class=/g) ?? []).length, 4);
  assert.doesNotMatch(card.renderCard(card.buildModel(hass(), { device_id: DEVICE }, timeline), { showTimeline: false }), /Recent results/);
});

test("unavailable and unknown states are not timeline results", () => {
  assert.equal(card.timelineEntry("unavailable", { analysed_at: ANALYSED_AT }), null);
  assert.equal(card.timelineEntry("unknown", {}), null);
  assert.equal(card.timelineEntry("A hallway", {}), null);
});

test("history rows become a timeline; attributes carry over rows that omit them", () => {
  const response = {
    "sensor.kitchen_observation": [
      { s: "unknown", a: {}, lu: 1 },
      { s: "An empty kitchen", a: { analysed_at: "2026-11-21T10:00:00+00:00", effective_confidence: 0.9 }, lu: 2 },
      { s: "Pan fire on the stove", a: { analysed_at: "2026-11-21T10:00:05+00:00", safety_flags: ["fire"], source: "teacher" }, lu: 3 },
      { s: "unavailable", lu: 4 },
    ],
  };
  const timeline = card.historyToTimeline(response, "sensor.kitchen_observation", 6);
  assert.deepEqual(
    timeline.map((e) => [e.summary, e.source, e.flags]),
    [
      ["Pan fire on the stove", "teacher", ["fire"]],
      ["An empty kitchen", "student", []],
    ],
  );
  assert.deepEqual(card.historyToTimeline({}, "sensor.kitchen_observation"), []);
});

test("percentages are clamped and rounded; reasons read as words", () => {
  assert.equal(card.percent(0.876), 88);
  assert.equal(card.percent(1.7), 100);
  assert.equal(card.percent(-1), 0);
  assert.equal(card.percent(null), null);
  assert.equal(card.percent("n/a"), null);
  assert.equal(card.reasonText("low_confidence"), "low confidence");
  assert.equal(card.reasonText("something_new"), "something new");
  assert.equal(card.reasonText(null), "");
  assert.equal(card.formatTime("not a time"), "");
});

test("the card validates its configuration", () => {
  const element = new card.VisionTutorCard();
  element._render = () => {};
  assert.throws(() => element.setConfig(null), /Invalid configuration/);
  assert.throws(() => element.setConfig({ device_id: DEVICE, timeline: 99 }), /timeline must be/);
  element.setConfig({ device_id: DEVICE });
  assert.equal(element._config.timeline, card.DEFAULT_TIMELINE);
  assert.equal(element.getCardSize(), 7);
});

const withSwitch = () => ({
  ...registry(),
  "switch.kitchen_analysis": {
    entity_id: "switch.kitchen_analysis",
    device_id: DEVICE,
    platform: "vision_tutor",
    translation_key: "analysis",
  },
});

test("a paused camera says so instead of 'No hazard'", () => {
  const paused = hass({
    entities: withSwitch(),
    safety: { state: "unknown", attributes: { flags: [], confirmed_by_teacher: false, since: null, paused: true } },
    extraStates: { "switch.kitchen_analysis": { state: "off", attributes: {} } },
  });
  const model = card.buildModel(paused, { device_id: DEVICE });
  assert.equal(model.paused, true);
  assert.equal(model.entities.analysis, "switch.kitchen_analysis");
  const html = card.renderCard(model);
  assert.match(html, /data-safety="paused"/);
  assert.match(html, /Analysis paused/);
  assert.doesNotMatch(html, /No hazard/);
  // The last answer stays on show beside the pause.
  assert.match(html, /An empty kitchen by day/);

  // Switched on again: the sensor's own state shows.
  const running = hass({
    entities: withSwitch(),
    extraStates: { "switch.kitchen_analysis": { state: "on", attributes: {} } },
  });
  const html2 = card.renderCard(card.buildModel(running, { device_id: DEVICE }));
  assert.match(html2, /data-safety="off"/);
  assert.doesNotMatch(html2, /paused/i);

  // Paused before anything was analysed: the waiting message says why nothing comes.
  const pausedWaiting = hass({
    obs: { state: "unknown", attributes: {} },
    entities: withSwitch(),
    extraStates: { "switch.kitchen_analysis": { state: "off", attributes: {} } },
  });
  const waitingHtml = card.renderCard(card.buildModel(pausedWaiting, { device_id: DEVICE }));
  assert.match(waitingHtml, /data-status="paused"/);
  assert.doesNotMatch(waitingHtml, /Waiting for the first analysed frame/);
});

test("the k-of-n window says why a flagged frame is no hazard yet, and why a hazard stays", () => {
  const watching = hass({
    obs: observation({ safety_flags: ["fire"], escalated: true, escalation_reason: "safety", teacher: "queued" }),
    safety: {
      state: "off",
      attributes: { flags: [], confirmed_by_teacher: false, since: null, window: { phase: "watching", frames: 1, needed: 2 } },
    },
  });
  const html = card.renderCard(card.buildModel(watching, { device_id: DEVICE }));
  assert.match(html, /No hazard yet/);
  assert.match(html, /watching: 1 of 2 flagged frames/);

  const clearing = hass({
    safety: {
      state: "on",
      attributes: {
        flags: ["fire"],
        confirmed_by_teacher: true,
        since: ANALYSED_AT,
        window: { phase: "clearing", frames: 2, needed: 3 },
      },
    },
  });
  const html2 = card.renderCard(card.buildModel(clearing, { device_id: DEVICE }));
  assert.match(html2, /data-safety="on"/);
  assert.match(html2, /clearing: 2 of 3 clean frames/);

  // No evidence on its way: the plain words.
  const calm = card.renderCard(card.buildModel(hass(), { device_id: DEVICE }));
  assert.match(calm, /No hazard</);
  assert.doesNotMatch(calm, /watching|clearing/);
  assert.equal(card.windowProgress({ phase: "bogus", frames: 1, needed: 2 }), null);
});

test("the editor: a cleared timeline field stays empty while the user types (25, not 625)", () => {
  // A stand-in for the DOM the editor uses: ha-form is an object that records its data.
  const forms = [];
  globalThis.document = {
    createElement: () => {
      const form = { listeners: {}, addEventListener(type, fn) { this.listeners[type] = fn; } };
      forms.push(form);
      return form;
    },
  };
  globalThis.CustomEvent = class {
    constructor(type, init) {
      this.type = type;
      this.detail = init.detail;
    }
  };
  try {
    const editor = new card.VisionTutorCardEditor();
    const sent = [];
    editor.appendChild = () => {};
    editor.dispatchEvent = (event) => sent.push(event.detail.config);
    editor.hass = hass();
    editor.setConfig({ type: "custom:vision-tutor-card", device_id: DEVICE });
    const [form] = forms;
    assert.equal(form.data.timeline, undefined, "no default typed into the field");

    // Home Assistant hands the edited config back to setConfig after each change, as YAML
    // does: a cleared field is gone from it.
    const type = (value) => {
      form.listeners["value-changed"]({ detail: { value: { ...form.data, timeline: value } } });
      editor.setConfig(JSON.parse(JSON.stringify(sent.at(-1))));
    };
    type(6);
    assert.equal(form.data.timeline, 6);
    type(undefined); // the user clears the field
    assert.equal(form.data.timeline, undefined);
    assert.equal("timeline" in sent.at(-1), false);
    type(2);
    type(25);
    assert.equal(form.data.timeline, 25);
    assert.equal(sent.at(-1).timeline, 25);
    type(0); // 0 is a value: it hides the timeline
    assert.equal(sent.at(-1).timeline, 0);
  } finally {
    delete globalThis.document;
    delete globalThis.CustomEvent;
  }
});

test("a timeline result with a kept frame opens its event in the media browser", () => {
  const event = "media-source://vision_tutor/01JENTRY/01JCAMERA/1764672662000-0a1b2c3d";
  const entry = card.timelineEntry("Pan fire", {
    analysed_at: ANALYSED_AT,
    safety_flags: ["fire"],
    source: "teacher",
    snapshot: event,
  });
  const plain = card.timelineEntry("An empty kitchen", { analysed_at: "2026-11-21T09:59:00+00:00" });
  assert.equal(entry.snapshot, event);
  assert.equal(plain.snapshot, null);

  // The panel's path: one "type,content id" segment per level below the media sources' root.
  const url = card.mediaBrowserUrl(event);
  assert.equal(
    url,
    "/media-browser/browser/" +
      [
        "app,media-source://vision_tutor",
        "directory,media-source://vision_tutor/01JENTRY/01JCAMERA",
        `image,${event}`,
      ]
        .map(encodeURIComponent)
        .join("/"),
  );
  assert.equal(
    card.historyUrl(event),
    "/media-browser/browser/" +
      ["app,media-source://vision_tutor", "directory,media-source://vision_tutor/01JENTRY/01JCAMERA"]
        .map(encodeURIComponent)
        .join("/"),
  );
  // Nothing but Vision Tutor's own ids becomes a link.
  for (const other of [null, "", "media-source://media_source/local/x.jpg", "media-source://vision_tutor/a/b/c/d", "media-source://vision_tutor/a/<b>/c"]) {
    assert.equal(card.mediaBrowserUrl(other), null, other);
  }

  const html = card.renderCard(card.buildModel(hass(), { device_id: DEVICE }, [entry, plain]));
  const rows = html.match(/<li [^]*?<\/li>/g);
  assert.match(rows[0], /data-snapshot="media-source:\/\/vision_tutor\/01JENTRY\/01JCAMERA\/1764672662000-0a1b2c3d"/);
  assert.ok(rows[0].includes(`<a class="t-summary t-link" href="${url}" data-navigate`));
  assert.doesNotMatch(rows[1], /<a |data-snapshot/);
  assert.match(html, /Recent results · <a class="history-link" href="[^"]+01JCAMERA" data-navigate>Event history<\/a>/);
  // Without any kept frame there is no history link.
  assert.doesNotMatch(card.renderCard(card.buildModel(hass(), { device_id: DEVICE }, [plain])), /history-link/);
});
