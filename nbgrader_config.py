"""nbgrader configuration of the course (nbgrader 0.9). Run nbgrader commands from this folder.

    nbgrader generate_assignment update_rules --force   # solutions/ -> assignments/
    nbgrader autograde update_rules                      # submitted/ -> autograded/
    nbgrader generate_feedback update_rules              # autograded/ -> feedback/
    nbgrader export                                      # gradebook -> grades.csv

Hand grading: from this folder, `jupyter lab`, then open http://localhost:8888/formgrader with the
token the server prints (see the README's grading section). Its "Autograde" button is disabled
below: autograde with `cs231n-grade autograde`, which runs student code in the sandbox.

The gradebook is SQLite (gradebook.db next to this file) unless the environment variable
CS231N_GRADEBOOK_URL holds another SQLAlchemy URL, e.g.
postgresql://user@host/cs231n (which needs a PostgreSQL driver such as psycopg2 installed).
"""
import os

c = get_config()  # noqa: F821 - injected by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "cs231n-optim"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"

gradebook_url = os.environ.get("CS231N_GRADEBOOK_URL", "").strip()
if gradebook_url:
    c.CourseDirectory.db_url = gradebook_url

# Seconds one cell may run during autograde before it is interrupted and scored 0. The hidden
# tests take a few seconds; a student's infinite loop must not stall the batch.
c.ExecutePreprocessor.timeout = 60

# What replaces the code between ### BEGIN SOLUTION and ### END SOLUTION in the release.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# The exchange (nbgrader release/collect between accounts on one server) lives in the course
# folder; nbgrader's default /usr/local/share/nbgrader/exchange is usually unwritable and then
# every nbgrader call logs "Unwritable directory".
c.Exchange.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exchange")
os.makedirs(c.Exchange.root, exist_ok=True)  # nbgrader also calls a missing one "Unwritable"

# Formgrader: no config dump on the Manage Assignments page (its default "debug" mode tries to
# show the config as JSON and warns "Formgrader config is not serializable"), and its Autograde
# button refuses (only under NbGraderAPI; `nbgrader autograde` on the command line still works).
c.FormgradeExtension.debug = False
c.NbGraderAPI.Autograde.exporter_class = "cs231n_utils.grading.formgrader.RefuseUnsandboxedAutograde"
