"""Account page forms; Flask-WTF adds and checks the CSRF token on each."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from api.accounts.models import TOKEN_SCOPES


def no_null_characters(form, field):
    # PostgreSQL cannot compare or store NUL in text.
    if field.data and "\x00" in field.data:
        raise ValidationError("Null characters are not allowed.")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), no_null_characters])
    password = PasswordField("Password", validators=[DataRequired(), no_null_characters])


class LogoutForm(FlaskForm):
    pass


class PasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(), no_null_characters]
    )
    new_password = PasswordField(
        "New password", validators=[DataRequired(), Length(min=12, max=256), no_null_characters]
    )


class RevokeTokenForm(FlaskForm):
    pass


class CreateTokenForm(FlaskForm):
    name = StringField("Name", validators=[Optional(), Length(max=100), no_null_characters])
    # master-scope tokens are an operator's act (CLI), never made here (docs/security.md)
    scope = SelectField(
        "Scope",
        choices=[SelectChoice(s, s) for s in TOKEN_SCOPES if s != "master"],
        default="user",
    )
    device = SelectField("Device (device scope only)", choices=[], validate_choice=True)
    expires = DateTimeLocalField(
        "Expires (UTC, optional)", validators=[Optional()], format="%Y-%m-%dT%H:%M"
    )

    def validate_expires(self, field):
        if field.data and field.data.replace(tzinfo=UTC) <= datetime.now(UTC):
            raise ValidationError("The expiry must be in the future.")

    def validate_device(self, field):
        if self.scope.data == "device" and not field.data:
            raise ValidationError("A device-scope token needs a device.")
        if self.scope.data != "device" and field.data:
            raise ValidationError("Only device-scope tokens name a device.")
