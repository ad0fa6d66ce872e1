"""Where samples come from: manifests, folders and hub datasets (rows), and audio decoding."""
