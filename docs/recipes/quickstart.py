from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_email_cancel import EmailCancel, Principal, SQLAlchemyQueueRepository, TokenHeaderAuth

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///queue.db"
db = SQLAlchemy(app)

class Entry(db.Model):  # the queue table your app already has
    id = db.Column(db.Integer, primary_key=True)
    request_id = db.Column(db.BigInteger, index=True)
    status = db.Column(db.String(16))
    send_at = db.Column(db.DateTime)  # naive UTC

EmailCancel(app, repository=SQLAlchemyQueueRepository(
    db, Entry, request_id="request_id", scheduled_at="send_at",
    status="status", cancellable=["Initial"], cancelled="Cancelled",
), authenticator=TokenHeaderAuth({"s3cret-token": Principal(id="ops")}))
