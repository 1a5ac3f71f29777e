"""Constants for Vision Tutor."""

from typing import Final

DOMAIN: Final = "vision_tutor"

CONF_STUDENT_URL: Final = "student_url"
DEFAULT_STUDENT_URL: Final = "http://localhost:11434"

# Seconds to wait for the student host while setting up or validating it.
CONNECT_TIMEOUT: Final = 10
