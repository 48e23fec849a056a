"""The one base of the errors that mean "fix your input" (params, data, models, the MLflow store),
as opposed to bugs: stages print them in one line without a traceback and exit 2.

Imports nothing, so that any module can subclass it without pulling the rest of the package in
(and, through the derived stage dependencies, every stage's rerun with it).
"""


class UserError(Exception):
    """Something the user must fix; the message names the setting, file or value and what to do."""
