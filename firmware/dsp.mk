# Engine speed make rules, included by firmware/firmware.mk.
#   make bench-engine   -> instructions per inference on qemu-m4 (prepared and interpreter, portable and DSP kernels), arena, flash and code per model, against TFLM; build/bench/engine.json
.PHONY: bench-engine

bench-engine: setup
	nice -n 5 $(BIN)/python bench/engine_icount.py --json build/bench/engine.json
