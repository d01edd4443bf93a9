"""Factories for players and operators."""

from __future__ import annotations

import factory
from django.contrib.auth.models import Group

from accounts.models import User

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"player{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class StaffFactory(UserFactory):
    email = factory.Sequence(lambda n: f"operator{n}@example.com")
    is_staff = True

    @factory.post_generation
    def role(obj, create, extracted, **kwargs):  # noqa: N805
        """StaffFactory(role="finance") puts the operator in that role's group."""
        if create and extracted:
            from accounts.roles import ensure_operator_roles

            if not Group.objects.filter(name=extracted).exists():
                ensure_operator_roles()
            obj.groups.add(Group.objects.get(name=extracted))
