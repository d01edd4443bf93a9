"""Install the console's admin site as the default admin site."""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "ops.console.site.ConsoleAdminSite"
