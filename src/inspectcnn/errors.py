"""The errors that mean "fix your input", as opposed to bugs: stages print them without a traceback."""

from inspectcnn.config import ConfigError
from inspectcnn.data.images import BadImageError
from inspectcnn.data.prepare import PrepareError
from inspectcnn.data.sources import DataSourceError
from inspectcnn.models.registry import InputTooSmallError, UnknownModelError
from inspectcnn.tracking import TrackingUnavailableError

USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError, PrepareError, DataSourceError, BadImageError, InputTooSmallError, UnknownModelError,
    TrackingUnavailableError,
)


def user_errors() -> tuple[type[Exception], ...]:
    """USER_ERRORS plus the training errors (imported late: training imports TensorFlow)."""
    from inspectcnn.models.saving import UnsafeModelError
    from inspectcnn.transfer import TransferError
    from inspectcnn.training import TrainingError

    return (*USER_ERRORS, TrainingError, TransferError, UnsafeModelError)
