"""Defaults that the command line shows in its help, in a module that
imports nothing (`keras-distill --help` imports no Keras backend).

Measured with the demo (`examples/demo.py`: Fashion-MNIST, 784-1200-1200-10
teacher, 784-32-10 student): small students want low temperatures.
"""

DEFAULT_ALPHA = 0.5
DEFAULT_TEMPERATURE = 2.0
