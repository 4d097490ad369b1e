"""Reading and writing: table files and directories, PostgreSQL, atomic outputs, HTML pages."""

from churnkit.io.atomic import atomic_directory, atomic_file
from churnkit.io.files import find_table_file, load_tables, read_table_file, save_tables
from churnkit.io.html import page_foot, page_head, png_base64
from churnkit.io.postgres import (
    connect,
    copy_arrow,
    is_database_url,
    pg_type,
    redact,
    write_tables,
)
from churnkit.io.progress import progress_bar

__all__ = [
    "atomic_directory",
    "atomic_file",
    "connect",
    "copy_arrow",
    "find_table_file",
    "is_database_url",
    "load_tables",
    "page_foot",
    "page_head",
    "pg_type",
    "png_base64",
    "progress_bar",
    "read_table_file",
    "redact",
    "save_tables",
    "write_tables",
]
