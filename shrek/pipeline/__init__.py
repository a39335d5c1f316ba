"""The main job: the notebook pipeline and the steps its notebooks call."""
