"""Why an outbox e-mail was written (backoffice.CustomerEmail) and who may resend it."""


import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('backoffice', '0007_adminaction_append_only_pgtrigger'),
        ('post_office', '0014_alter_email_recipient_delivery_status_and_more'),
    ]

    operations = [
        migrations.CreateModel(
            name='CustomerEmail',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('refund_confirmation', 'Refund confirmation'), ('receipt', 'Receipt')], max_length=32)),
                ('target_type', models.CharField(help_text='app_label.model of the cause.', max_length=64)),
                ('target_id', models.CharField(max_length=64)),
                ('target_repr', models.CharField(blank=True, max_length=255, verbose_name='cause')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('email', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='customer_email', to='post_office.email')),
            ],
            options={
                'permissions': [('resend_customeremail', 'Can resend customer e-mails from the outbox')],
                'indexes': [models.Index(fields=['target_type', 'target_id'], name='customeremail_target_idx')],
            },
        ),
    ]
