"""One module per Lambda / Tencent SCF function: importing one is that function's cold start."""

from shared.coldstart import pause_gc

# Before anything heavy is imported; shared.api.handler.lambda_handler resumes it (shared/coldstart.py).
pause_gc()
