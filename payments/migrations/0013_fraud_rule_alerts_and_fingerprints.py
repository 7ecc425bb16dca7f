"""Our own fraud rules (payments/fraud_rules.py): rule alerts on FraudAlert (rule, severity,
risk score, numbers, cause, customer, linked payments; one unresolved alert per rule and
cause), FraudRuleFailure, card fingerprints on payments and payment methods, and the indexes
the rules' windows read."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0012_dispute_responses'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='FraudRuleFailure',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('rule', models.CharField(max_length=32)),
                ('trigger', models.CharField(choices=[('event', 'Payment event'), ('command', 'Command'), ('schedule', 'Schedule')], max_length=16)),
                ('error', models.TextField()),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.AddField(
            model_name='fraudalert',
            name='cause_key',
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name='fraudalert',
            name='customer',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='fraud_alerts', to='payments.customer'),
        ),
        migrations.AddField(
            model_name='fraudalert',
            name='numbers',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='fraudalert',
            name='payment_ids',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='fraudalert',
            name='risk_score',
            field=models.PositiveSmallIntegerField(blank=True, help_text="0-100: the rule's weight times how far over its threshold.", null=True),
        ),
        migrations.AddField(
            model_name='fraudalert',
            name='rule',
            field=models.CharField(blank=True, choices=[('failed_attempts', 'Multiple failed attempts'), ('rapid_attempts', 'Rapid attempts'), ('unusual_amount', 'Unusual amount'), ('new_account_high_amount', 'New account, high amount'), ('many_payment_methods', 'Many payment methods'), ('shared_card', 'Card shared across customers'), ('shared_ip', 'IP shared across customers')], max_length=32),
        ),
        migrations.AddField(
            model_name='fraudalert',
            name='severity',
            field=models.CharField(blank=True, choices=[('low', 'Low'), ('medium', 'Medium'), ('high', 'High'), ('critical', 'Critical')], max_length=16),
        ),
        migrations.AddField(
            model_name='historicalfraudalert',
            name='cause_key',
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name='historicalfraudalert',
            name='customer',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='payments.customer'),
        ),
        migrations.AddField(
            model_name='historicalfraudalert',
            name='numbers',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='historicalfraudalert',
            name='payment_ids',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='historicalfraudalert',
            name='risk_score',
            field=models.PositiveSmallIntegerField(blank=True, help_text="0-100: the rule's weight times how far over its threshold.", null=True),
        ),
        migrations.AddField(
            model_name='historicalfraudalert',
            name='rule',
            field=models.CharField(blank=True, choices=[('failed_attempts', 'Multiple failed attempts'), ('rapid_attempts', 'Rapid attempts'), ('unusual_amount', 'Unusual amount'), ('new_account_high_amount', 'New account, high amount'), ('many_payment_methods', 'Many payment methods'), ('shared_card', 'Card shared across customers'), ('shared_ip', 'IP shared across customers')], max_length=32),
        ),
        migrations.AddField(
            model_name='historicalfraudalert',
            name='severity',
            field=models.CharField(blank=True, choices=[('low', 'Low'), ('medium', 'Medium'), ('high', 'High'), ('critical', 'Critical')], max_length=16),
        ),
        migrations.AddField(
            model_name='historicalpayment',
            name='card_fingerprint',
            field=models.CharField(blank=True, db_default='', default='', max_length=64),
        ),
        migrations.AddField(
            model_name='payment',
            name='card_fingerprint',
            field=models.CharField(blank=True, db_default='', default='', max_length=64),
        ),
        migrations.AddField(
            model_name='paymentmethod',
            name='card_fingerprint',
            field=models.CharField(blank=True, db_default='', default='', max_length=64),
        ),
        migrations.AlterField(
            model_name='fraudalert',
            name='source',
            field=models.CharField(choices=[('early_fraud_warning', 'Stripe early fraud warning'), ('staff', 'Flagged by staff'), ('rule', 'Our fraud rules')], max_length=32),
        ),
        migrations.AlterField(
            model_name='historicalfraudalert',
            name='source',
            field=models.CharField(choices=[('early_fraud_warning', 'Stripe early fraud warning'), ('staff', 'Flagged by staff'), ('rule', 'Our fraud rules')], max_length=32),
        ),
        migrations.AddIndex(
            model_name='fraudalert',
            index=models.Index(fields=['rule', 'cause_key'], name='fraud_rule_cause_idx'),
        ),
        migrations.AddIndex(
            model_name='payment',
            index=models.Index(condition=models.Q(('card_fingerprint', ''), _negated=True), fields=['card_fingerprint', 'created'], name='payment_fingerprint_idx'),
        ),
        migrations.AddIndex(
            model_name='payment',
            index=models.Index(condition=models.Q(('ip_address__isnull', False)), fields=['ip_address', 'created'], name='payment_ip_created_idx'),
        ),
        migrations.AddIndex(
            model_name='paymentmethod',
            index=models.Index(fields=['customer', 'created'], name='pm_customer_created_idx'),
        ),
        migrations.AddIndex(
            model_name='paymentmethod',
            index=models.Index(condition=models.Q(('card_fingerprint', ''), _negated=True), fields=['card_fingerprint'], name='pm_fingerprint_idx'),
        ),
        migrations.AddConstraint(
            model_name='fraudalert',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ('open', 'investigating')), models.Q(('rule', ''), _negated=True)), fields=('rule', 'cause_key'), name='fraud_alert_one_unresolved_per_cause'),
        ),
        migrations.AddIndex(
            model_name='fraudrulefailure',
            index=models.Index(fields=['-created_at'], name='fraud_rule_failure_at_idx'),
        ),
    ]
