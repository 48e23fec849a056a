"""The errors that mean "fix your input", as opposed to bugs: stages print them without a traceback."""

from inspectcnn.config import ConfigError
from inspectcnn.data.images import BadImageError
from inspectcnn.data.prepare import PrepareError
from inspectcnn.data.sources import DataSourceError

USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, PrepareError, DataSourceError, BadImageError)
