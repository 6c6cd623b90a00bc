"""The executor service: sandboxed validation of proposals and checking of answers (docs/method.md, part 4)."""
