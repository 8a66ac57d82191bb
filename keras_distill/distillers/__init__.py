"""The public trainers, one class per module: each is a `keras.Model` (or, for
the multi-stage chains, a sequence of them)."""

from keras_distill.distillers.assistant_chain import AssistantChain
from keras_distill.distillers.born_again import BornAgain
from keras_distill.distillers.distiller import Distiller
from keras_distill.distillers.feature_distiller import FeatureDistiller
from keras_distill.distillers.fsp_distiller import FSPDistiller
from keras_distill.distillers.hint_distiller import HintDistiller
from keras_distill.distillers.mutual_learner import MutualLearner
from keras_distill.distillers.on_policy_distiller import OnPolicyDistiller
