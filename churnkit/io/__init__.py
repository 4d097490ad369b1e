"""Reading and writing: table files and directories, PostgreSQL, atomic outputs, HTML pages."""

from churnkit.io.atomic import atomic_directory, atomic_file
from churnkit.io.files import find_table_file, load_tables, read_table_file, save_tables
from churnkit.io.html import page_foot, page_head, png_base64
from churnkit.io.postgres import connect, redact, write_tables

__all__ = [
    "atomic_directory",
    "atomic_file",
    "connect",
    "find_table_file",
    "load_tables",
    "page_foot",
    "page_head",
    "png_base64",
    "read_table_file",
    "redact",
    "save_tables",
    "write_tables",
]
