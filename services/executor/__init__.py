"""The executor service: sandboxed validation of proposals and checking of answers (AZR-SPEC section 4)."""
