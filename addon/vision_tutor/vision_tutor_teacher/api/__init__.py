"""The HTTP API, one module per resource; `vision_tutor_teacher.api.app` assembles them."""
