"""Private pieces of a distiller's training step and of its arguments.

Imported by the distillers and `teacher_cache`; imports no distiller.
"""
