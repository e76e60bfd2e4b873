"""Explanations: exact SHAP for trees and linear models, sampled SHAP for the rest."""
