"""Where models live: the home folder, model folders, the registry, the hub, checkpoint files."""
