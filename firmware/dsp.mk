# Engine speed make rules, included by firmware/firmware.mk.
#   make bench-engine   -> instructions per inference on qemu-m4, portable vs DSP kernels, against TFLM's figures
.PHONY: bench-engine

bench-engine: setup
	$(BIN)/python bench/engine_icount.py
