"""nbgrader configuration of the course (nbgrader 0.9). Run nbgrader commands from this folder.

    nbgrader generate_assignment update_rules --force   # solutions/ -> assignments/
    nbgrader autograde update_rules                      # submitted/ -> autograded/
    nbgrader generate_feedback update_rules              # autograded/ -> feedback/
    nbgrader export                                      # gradebook -> grades.csv

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
