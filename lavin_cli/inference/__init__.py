"""From validated options to predictions: options, the pixel/latent codec, sampling, the engine,
the image and video runners, records, and the `Pipeline` that ties them together."""
