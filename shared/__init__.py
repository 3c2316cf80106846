"""Code used by both the server and the site clients: tasks, models, DICOM pipeline, config."""
