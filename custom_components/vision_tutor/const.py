"""Constants for Vision Tutor."""

from typing import Final

DOMAIN: Final = "vision_tutor"

# Config entry data: the hosts (one entry per student host).
CONF_STUDENT_URL: Final = "student_url"
CONF_STUDENT_MODEL: Final = "student_model"
CONF_EXTRA_STUDENT_URLS: Final = "extra_student_urls"
"""More Ollama hosts with the same student model (a student pool); absent or empty: one host."""
CONF_TEACHER_MODE: Final = "teacher_mode"
CONF_TEACHER_URL: Final = "teacher_url"
CONF_TEACHER_TOKEN: Final = "teacher_token"

TEACHER_MODE_ADDON: Final = "addon"
TEACHER_MODE_MANUAL: Final = "manual"
TEACHER_MODE_NONE: Final = "none"

DEFAULT_STUDENT_URL: Final = "http://localhost:11434"
DEFAULT_STUDENT_MODEL: Final = "gemma4:e2b"
"""Preselected when the host has it, and the model the setup suggests pulling when none has vision."""

# Config subentries: one per monitored camera.
SUBENTRY_CAMERA: Final = "camera"
CONF_CAMERA_ENTITY: Final = "camera_entity"
CONF_SCAN_INTERVAL: Final = "scan_interval"
"""Seconds between analyses; 0 analyses only on the motion trigger or an action."""
CONF_MOTION_ENTITY: Final = "motion_entity"
CONF_SCENE_DESCRIPTION: Final = "scene_description"

DEFAULT_SCAN_INTERVAL: Final = 30

# Options: routing, temporal window and resource limits.
CONF_MIN_CONFIDENCE: Final = "min_confidence"
CONF_SAFETY_KEYWORDS: Final = "safety_keywords"
CONF_AUDIT_RATE: Final = "audit_rate"
CONF_QUEUE_LIMIT: Final = "teacher_queue_limit"
CONF_WINDOW_SIZE: Final = "window_size"
CONF_WINDOW_TRIGGER: Final = "window_trigger"
CONF_CLEAN_TO_CLEAR: Final = "clean_to_clear"
CONF_CHANGE_SENSITIVITY: Final = "change_sensitivity"
CONF_STUDENT_TIMEOUT: Final = "student_timeout"
CONF_MAX_CONCURRENT: Final = "max_concurrent"
CONF_FRAME_WIDTH: Final = "frame_width"
CONF_DISMISSAL_CLEARS: Final = "dismissal_clears"
CONF_OUTBOX_MAX_AGE: Final = "outbox_max_age"
"""Minutes an escalation may wait in the outbox for the teacher service before it expires."""
CONF_RELOOK_MINUTES: Final = "relook_minutes"
"""Minutes after which a frame is analysed even when the change gate sees no change."""
CONF_TARGET: Final = "target"
"""What the calibrated policy holds: "share" (a teacher budget), "reviews_per_hour" or
"miss_rate" (a maximum estimated missed-hazard rate)."""
CONF_TEACHER_BUDGET: Final = "teacher_budget"
"""Percent of analysed frames the teacher may review."""
CONF_REVIEWS_PER_HOUR: Final = "reviews_per_hour"
CONF_MAX_MISS_RATE: Final = "max_miss_rate"
"""Estimated missed hazards per 1000 analysed frames: the target, or the repair's limit."""
CONF_TIME_BUCKETS: Final = "time_buckets"
"""Calibrate day and night apart: "sun", "hours" or "off"."""
CONF_DAY_START: Final = "day_start"
CONF_DAY_END: Final = "day_end"

CONF_HISTORY_DAYS: Final = "history_days"
"""Days the event history keeps a camera's hazards and teacher reviews (0: no history)."""
CONF_HISTORY_MAX_MB: Final = "history_max_mb"
"""Megabytes the event history of an entry's cameras may take on disk; the oldest go first."""

DEFAULT_MIN_CONFIDENCE: Final = 0.72
DEFAULT_SAFETY_KEYWORDS: Final = ("fire", "smoke", "weapon", "fall", "intrusion", "blood")
DEFAULT_AUDIT_RATE: Final = 150
"""One frame in this many is sent to the teacher at random."""
DEFAULT_QUEUE_LIMIT: Final = 20
DEFAULT_WINDOW_SIZE: Final = 5
DEFAULT_WINDOW_TRIGGER: Final = 2
DEFAULT_CLEAN_TO_CLEAR: Final = 3
DEFAULT_CHANGE_SENSITIVITY: Final = 0.5
"""1 analyses every frame; lower values skip frames that barely changed (0: only big changes)."""
DEFAULT_STUDENT_TIMEOUT: Final = 20.0
"""Seconds for one answer. gemma4:e2b takes 6 to 7 s per camera image on an Apple M4 (the
Scrypted LLM Notifier's LOCAL-MODELS benchmark, April 2026) and about twice that on a CPU
without a GPU; 20 s leaves room for a second frame queued on the same server. README, "Hardware
and Ollama versions", has the figures."""
STUDENT_LOAD_ALLOWANCE: Final = 60.0
"""Extra seconds for an answer that may have to load the model first, until Ollama's own
`load_duration` shows how long a load takes on this server (then twice that)."""
DEFAULT_MAX_CONCURRENT: Final = 4
DEFAULT_FRAME_WIDTH: Final = 768
DEFAULT_DISMISSAL_CLEARS: Final = True
DEFAULT_OUTBOX_MAX_AGE: Final = 60
DEFAULT_RELOOK_MINUTES: Final = 10
DEFAULT_HISTORY_DAYS: Final = 7
DEFAULT_HISTORY_MAX_MB: Final = 500
"""About 5,000 frames at the default width (a JPEG of 768 px is 60 to 120 kB)."""
HISTORY_FOLDER: Final = DOMAIN
"""The event history lives in `<config>/vision_tutor/<entry id>/<camera subentry id>/`."""
TARGETS: Final = ("share", "reviews_per_hour", "miss_rate")
DEFAULT_TARGET: Final = "share"
DEFAULT_TEACHER_BUDGET: Final = 15.0
DEFAULT_REVIEWS_PER_HOUR: Final = 30.0
DEFAULT_MAX_MISS_RATE: Final = 2.0
TIME_BUCKETS: Final = ("sun", "hours", "off")
DEFAULT_TIME_BUCKETS: Final = "sun"
DEFAULT_DAY_START: Final = 7
DEFAULT_DAY_END: Final = 19
MIN_RELOOK_MINUTES: Final = 1
MAX_RELOOK_MINUTES: Final = 1440

# Seconds to wait for a host while setting up or validating it.
CONNECT_TIMEOUT: Final = 10

# Ollama: how long the student stays loaded between frames, and its sampling temperature.
STUDENT_KEEP_ALIVE_S: Final = 600
STUDENT_KEEP_ALIVE: Final = f"{STUDENT_KEEP_ALIVE_S // 60}m"
STUDENT_TEMPERATURE: Final = 0.3

# Bus events automations can trigger on.
EVENT_ESCALATION: Final = "vision_tutor_escalation"
EVENT_SAFETY: Final = "vision_tutor_safety"
EVENT_TEACHER_REVIEW: Final = "vision_tutor_teacher_review"
