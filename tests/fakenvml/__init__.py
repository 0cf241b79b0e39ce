"""A fake ``libnvidia-ml.so.1`` written in C, built against NVIDIA's own
``nvml.h`` and loaded under the real pynvml: ``build.py`` compiles it (cached
by source hash), ``control.py`` drives its test-control API."""
