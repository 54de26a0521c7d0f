"""Reading and writing: checkpoint readers, safe unpickling, stored tensors, safetensors files, atomic
output folders, hashing with its digest cache, the user cache's files, and checked JSON and paths."""
