"""Helpers the tests import: Lambda shapes, an HTTP-level OpenAI fake, the functions' moto stacks.

Only fixtures live in conftest files; they are built from these. Nothing here imports the
offline stack (devstack/), so the product's unit tests never depend on the emulator.
"""
