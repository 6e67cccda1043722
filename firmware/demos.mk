# On-device inference demos in QEMU (firmware/demos), included by firmware/firmware.mk.
# Each first brings its spec's model up to date with `mcuforge run` (stages whose
# inputs did not change are reused), then runs the demo:
#   make demo-kws [SAY="yes no up" | WAV=speech.wav]   timed transcript of the keywords heard
#   make demo-digits | demo-gestures                   test split classified on the device, confusion matrix
#   make demo-vibration [FAULT=bearing_outer]          anomaly score per window, alarm when the fault begins
DEMO_TARGET ?= qemu-m4
SAY ?= yes no up
WAV ?=
FAULT ?= bearing_outer

.PHONY: demo-kws demo-digits demo-gestures demo-vibration

demo-kws: setup
	$(BIN)/mcuforge run specs/keywords.yaml
	$(BIN)/mcuforge demo kws --spec specs/keywords.yaml --target $(DEMO_TARGET) $(if $(WAV),--wav "$(WAV)",--say "$(SAY)")

demo-digits: setup
	$(BIN)/mcuforge run specs/digits.yaml
	$(BIN)/mcuforge demo digits --spec specs/digits.yaml --target $(DEMO_TARGET)

demo-gestures: setup
	$(BIN)/mcuforge run specs/gestures.yaml
	$(BIN)/mcuforge demo gestures --spec specs/gestures.yaml --target $(DEMO_TARGET)

demo-vibration: setup
	$(BIN)/mcuforge run specs/vibration.yaml
	$(BIN)/mcuforge demo vibration --spec specs/vibration.yaml --target $(DEMO_TARGET) --fault $(FAULT)
