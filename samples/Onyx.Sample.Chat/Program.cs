using Onyx.Sample.Chat;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();

// An IChatClient over the official OpenAI SDK, pointed at the gateway by the connection string the AppHost hands over.
builder.AddOnyxChatClient(OnyxConnection.DefaultName);

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapChatApi();

app.Run();
