from keras_distill.distillers.distiller import Distiller
