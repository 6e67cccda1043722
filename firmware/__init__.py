"""firmware/: the C99 int8 engine, the on-device feature extractor, board support and their host builds."""
