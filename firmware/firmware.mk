# Firmware make rules, included by the top-level Makefile.
#   make firmware MODEL=path/model.tflite TARGET=qemu-m4   -> build/firmware/<target>/<name>.elf/.bin/.hex/.map + size report
#   make flash    MODEL=path/model.tflite TARGET=qemu-m4   -> builds, then runs it in QEMU (or flashes a real board)
#   make flash    MODEL=path/model.tflite TARGET=coral-devboard HOST=mendel@192.168.100.2   -> copies and runs on a Coral Dev Board
#   make flash    MODEL=path/model.tflite TARGET=coral-usb -> runs on this host's Coral USB Accelerator
#   make bench-firmware                                    -> instructions per inference and flash/RAM per board
# Optional: INPUT=vectors.npy LABELS=labels.txt NAME=image_name KERNELS=portable|dsp INTERPRETER=1 (mf_load at boot instead of the prepared image)
TARGET ?= qemu-m4
MODEL ?=
INPUT ?=
LABELS ?=
NAME ?=
KERNELS ?=
HOST ?=
INTERPRETER ?=
FIRMWARE_ARGS = $(MODEL) --target $(TARGET) $(if $(INPUT),--input $(INPUT)) $(if $(LABELS),--labels $(LABELS)) $(if $(NAME),--name $(NAME)) $(if $(KERNELS),--kernels $(KERNELS)) $(if $(INTERPRETER),--interpreter)

.PHONY: firmware flash bench-firmware firmware-model-given

firmware-model-given:
	@test -n "$(MODEL)" || { echo "error: set MODEL=path/model.tflite (and TARGET=<board>, default qemu-m4)"; exit 2; }

firmware: setup firmware-model-given
	$(BIN)/mcuforge firmware build $(FIRMWARE_ARGS)

# Coral targets are not Cortex-M images: the Edge TPU runner takes them (mcuforge edgetpu run).
flash: setup firmware-model-given
ifneq ($(filter coral-%,$(TARGET)),)
	$(BIN)/mcuforge edgetpu run $(MODEL) --target $(TARGET) $(if $(HOST),--host $(HOST)) $(if $(INPUT),--input $(INPUT))
else
	$(BIN)/mcuforge firmware flash $(FIRMWARE_ARGS)
endif

bench-firmware: setup
	$(BIN)/python bench/firmware_icount.py
include firmware/dsp.mk
include firmware/demos.mk
