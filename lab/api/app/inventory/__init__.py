"""Customers, inventory items and the stock movements that change item quantities."""
