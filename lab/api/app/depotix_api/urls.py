"""URL conf. `/healthz` is not here: `depotix_api.health.HealthCheckMiddleware` answers it."""

from django.urls import include, path

urlpatterns = [
    path("api/inventory/", include("inventory.urls")),
]

handler400 = "depotix_api.errors.bad_request"
handler404 = "depotix_api.errors.not_found"
handler500 = "depotix_api.errors.server_error"
