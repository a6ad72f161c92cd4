"""Estimators: composition of the layers below, sklearn API."""
