"""The public names of `keras_distill`, re-exported by its `__init__`."""

from keras_distill import callbacks
from keras_distill import datasets
from keras_distill import features
from keras_distill import losses
from keras_distill import sharding
from keras_distill.cache_directory import CachedTeacherOutputs
from keras_distill.cutting import cut_student
from keras_distill.distillers.assistant_chain import AssistantChain
from keras_distill.distillers.born_again import BornAgain
from keras_distill.distillers.causal_lm_distiller import CausalLMDistiller
from keras_distill.distillers.distiller import Distiller
from keras_distill.distillers.feature_distiller import FeatureDistiller
from keras_distill.distillers.fsp_distiller import FSPDistiller
from keras_distill.distillers.hint_distiller import HintDistiller
from keras_distill.distillers.mutual_learner import MutualLearner
from keras_distill.distillers.on_policy_distiller import OnPolicyDistiller
from keras_distill.on_policy_evaluation import on_policy_divergence
from keras_distill.quantize import quantize_student
from keras_distill.sequence_data import generate_distillation_data
from keras_distill.teacher_cache import precompute_teacher_outputs
from keras_distill.teacher_cache import with_teacher_outputs
from keras_distill.tuning import tune
