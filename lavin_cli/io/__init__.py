"""Reading and writing files: images, videos, atomic publishing, hashing."""
