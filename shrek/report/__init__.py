"""Figures and tables for the notebooks and reports."""
