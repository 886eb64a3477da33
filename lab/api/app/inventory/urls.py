"""Routes under /api/inventory/."""

from django.urls import path

from inventory import views

urlpatterns = [
    path("stock-movements/", views.stock_movements, name="stock-movements"),
    path("items/", views.items, name="items"),
]
